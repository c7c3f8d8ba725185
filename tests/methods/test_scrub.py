"""SCRUB: max-steps push the student away from the teacher on forget rows, min-steps keep it close
on retain rows, the loss is the authors' (-KL; alpha * KL + gamma * CE), the teacher is frozen."""

import copy

import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.scrub as scrub_module
from medunlearn.config import ConfigError, MethodConfig
from medunlearn.engine import Batch
from medunlearn.methods import unlearn
from medunlearn.methods.registry import method_params
from medunlearn.training import class_weights


def _kl(teacher, student, rows, data, engine, temperature: float = 4.0) -> float:
    """KL(teacher || student) at T over the given training rows, eval mode (no augmentation)."""
    images = data.dataset.train.images[rows]
    target = F.softmax(engine.logits(teacher, images) / temperature, dim=1)
    log_student = F.log_softmax(engine.logits(student, images) / temperature, dim=1)
    return F.kl_div(log_student, target, reduction="batchmean").item()


def _distill_kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """The authors' DistillKL: summed KL over the batch, times T^2, over the batch size."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, teacher, reduction="sum")
    return kl * temperature**2 / len(student_logits)


def _changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(
        not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    )


FAST = {"lr": 0.1, "batch_size": 16, "forget_batch_size": 4}
# with alpha = gamma = 0 and plain SGD the min-steps are inert: only the max-steps move weights
MAX_ONLY = {**FAST, "epochs": 3, "alpha": 0.0, "gamma": 0.0, "momentum": 0.0, "weight_decay": 0.0}


def test_max_steps_raise_the_forget_kl(original, unlearn_data, context, engine):
    inert = MethodConfig("scrub", {**MAX_ONLY, "msteps": 0})
    unchanged = unlearn(original, unlearn_data, inert, context).model
    assert not _changed(original, unchanged)
    before = _kl(original, unchanged, unlearn_data.forget_index, unlearn_data, engine)
    ascended = MethodConfig("scrub", {**MAX_ONLY, "msteps": 3})
    model = unlearn(original, unlearn_data, ascended, context).model
    after = _kl(original, model, unlearn_data.forget_index, unlearn_data, engine)
    assert before < 0.01  # train- vs eval-mode batch norm only
    assert after > 0.1


def test_min_steps_pull_the_retain_kl_back(original, unlearn_data, context, engine):
    """After two epochs with max-steps, four more of min-steps only bring the student back."""
    retain_kl = []
    for epochs in (2, 6):
        params = {**FAST, "epochs": epochs, "msteps": 2, "alpha": 1.0, "gamma": 0.0}
        model = unlearn(original, unlearn_data, MethodConfig("scrub", params), context).model
        retain_kl.append(_kl(original, model, unlearn_data.retain_index, unlearn_data, engine))
    assert retain_kl[0] > 0.03
    assert retain_kl[1] < retain_kl[0] / 3


def test_each_epoch_is_a_forget_pass_then_a_retain_pass(
    original, unlearn_data, context, batch_rows
):
    params = {"epochs": 3, "msteps": 2, "batch_size": 16}
    unlearn(original, unlearn_data, MethodConfig("scrub", params), context)
    forget = set(unlearn_data.forget_index.tolist())
    retain = set(unlearn_data.retain_index.tolist())
    assert batch_rows == [forget, retain, forget, retain, retain]


@pytest.mark.parametrize("class_weighted", [False, True])
def test_loss_is_the_authors_on_retain_and_forget_batches(
    original, unlearn_data, context, monkeypatch, class_weighted
):
    captured = {}

    def capture(model, params, ctx, epoch_batches, epoch_loss, after_step=None):
        captured["loss"] = epoch_loss(0, ctx.engine.generator(0))
        return model

    monkeypatch.setattr(scrub_module, "fit_method", capture)
    alpha, gamma, temperature = 0.3, 0.7, 2.0
    params = {"alpha": alpha, "gamma": gamma, "kd_temperature": temperature,
              "class_weighted": class_weighted}  # fmt: skip
    unlearn(original, unlearn_data, MethodConfig("scrub", params), context)
    train = unlearn_data.dataset.train
    retain_labels = train.labels[unlearn_data.retain_index]
    weight = class_weights(retain_labels, 8) if class_weighted else None
    generator = torch.Generator().manual_seed(0)
    for rows, is_forget in ((unlearn_data.retain_index[:6], False),
                            (unlearn_data.forget_index[:5], True)):  # fmt: skip
        images = train.images[rows]
        batch = Batch(images, train.labels[rows], rows)
        logits = torch.randn(len(rows), 8, generator=generator)
        with torch.no_grad():
            teacher_logits = original.eval()(images)
        kl = _distill_kl(logits, teacher_logits, temperature)
        ce = F.cross_entropy(logits, batch.labels, weight=weight)
        expected = -kl if is_forget else alpha * kl + gamma * ce
        assert kl.item() > 0.01
        assert captured["loss"](logits, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_teacher_is_frozen_and_never_changes(original, unlearn_data, context, monkeypatch):
    teachers = []
    real = scrub_module.frozen_copy

    def spy(model, engine):
        teachers.append(real(model, engine))
        return teachers[-1]

    monkeypatch.setattr(scrub_module, "frozen_copy", spy)
    params = {**FAST, "epochs": 2, "msteps": 1}
    original.train()  # the teacher must be put in eval mode, whatever mode it came in
    model = unlearn(original, unlearn_data, MethodConfig("scrub", params), context).model
    (teacher,) = teachers
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    for name, value in original.state_dict().items():
        assert torch.equal(teacher.state_dict()[name], value), name
    assert _changed(original, model)
    assert model.state_dict().keys() == original.state_dict().keys()


def test_msteps_beyond_epochs_is_a_config_error():
    with pytest.raises(ConfigError, match="msteps must be <= epochs"):
        method_params("scrub", {"epochs": 1})
    assert method_params("scrub", {"epochs": 1, "msteps": 1}).msteps == 1


def test_defaults_are_the_authors():
    params = method_params("scrub", {})
    assert (params.epochs, params.msteps, params.lr, params.kd_temperature) == (3, 2, 5e-4, 4.0)
    assert (params.alpha, params.gamma, params.momentum, params.weight_decay) == (
        0.001, 0.99, 0.9, 5e-4)  # fmt: skip
    assert (params.batch_size, params.forget_batch_size) == (256, 512)


def test_scrub_is_seeded(original, unlearn_data, context):
    method = MethodConfig("scrub", {**FAST, "epochs": 1, "msteps": 1})
    first = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    second = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    assert not _changed(first, second)
