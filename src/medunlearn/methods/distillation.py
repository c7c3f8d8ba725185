"""Knowledge-distillation pieces shared by the teacher-student methods (SCRUB, Bad Teacher)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.engine import Engine


def frozen_teacher(model: nn.Module, engine: Engine) -> nn.Module:
    """A frozen copy of `model` on the engine's device, in eval mode as the authors' teachers."""
    teacher = engine.prepare(copy.deepcopy(model)).eval()
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def soft_targets(teacher: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's float32 softmax at a temperature on these (already augmented) images."""
    return F.softmax(teacher(images).float() / temperature, dim=1)


def distill_kl(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) per sample, both softmaxes at the temperature (float32, shape N)."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, teacher_probs, reduction="none").sum(dim=1)
