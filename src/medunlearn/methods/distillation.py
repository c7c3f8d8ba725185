"""Knowledge-distillation pieces shared by the teacher-student methods (SCRUB, Bad Teacher)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
