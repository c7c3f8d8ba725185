"""Boundary Shrink: the attack is the bounded FGSM/PGD of the authors' code on the frozen
original model, neighbour labels are never the true one, and only forget rows are trained."""

import copy

import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.boundary_shrink as bs
from medunlearn.config import MethodConfig
from medunlearn.methods import unlearn
from medunlearn.methods.boundary_shrink import BoundaryShrinkParams, attack, neighbour_labels


def _forget_batch(data):
    rows = data.forget_index
    return data.dataset.train.images[rows], data.dataset.train.labels[rows]


def _hand_fgsm_label(model, image, label, bound):
    """One sample by hand: x + bound * sign(grad CE), clipped to [0, 1], on the 1/255 grid;
    then the model's best class other than the true one."""
    x = (image.float() / 255)[None].requires_grad_(True)
    F.cross_entropy(model(x), label[None]).backward()
    adversarial = torch.round(torch.clamp(x + bound * x.grad.sign(), 0, 1) * 255) / 255
    with torch.no_grad():
        logits = model(adversarial)[0]
    logits[label] = float("-inf")
    return int(logits.argmax())


def test_neighbour_labels_match_a_hand_run_and_are_never_the_true_label(
    unlearn_data, engine, original
):
    frozen = copy.deepcopy(original).eval()
    images, labels = _forget_batch(unlearn_data)
    got = neighbour_labels(frozen, images, labels, BoundaryShrinkParams(), engine)
    expected = [_hand_fgsm_label(frozen, images[i], labels[i], 0.1) for i in range(len(labels))]
    assert got.tolist() == expected
    assert not (got == labels).any()


def test_attack_stays_in_the_bound_on_the_pixel_grid(unlearn_data, engine, original):
    frozen = copy.deepcopy(original).eval()
    images, labels = _forget_batch(unlearn_data)
    params = BoundaryShrinkParams(bound=0.03, step=2 / 255, iterations=8)
    adversarial = attack(frozen, images, labels, params, engine)
    clean = images.float() / 255
    assert (adversarial - clean).abs().max() <= 0.03 + 0.5 / 255
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.equal(torch.round(adversarial * 255), adversarial * 255)
    assert not torch.equal(adversarial, clean)
    # PGD raises the loss of the true labels above the clean images'
    with torch.no_grad():
        assert F.cross_entropy(frozen(adversarial), labels) > F.cross_entropy(frozen(clean), labels)


def test_a_failed_attack_gives_the_true_label_only_without_incorrect_only(
    unlearn_data, engine, original
):
    """A step too small to move any pixel leaves the clean image: the authors' code then trains
    correctly classified samples towards their own label; incorrect_only takes the runner-up."""
    frozen = copy.deepcopy(original).eval()
    images, labels = _forget_batch(unlearn_data)
    tiny = {"bound": 1e-4, "step": 1e-4}
    kept = neighbour_labels(
        frozen, images, labels, BoundaryShrinkParams(**tiny, incorrect_only=False), engine
    )
    with torch.no_grad():
        assert torch.equal(kept, frozen(images.float() / 255).argmax(1))
    assert (kept == labels).any()
    runner_up = neighbour_labels(frozen, images, labels, BoundaryShrinkParams(**tiny), engine)
    assert not (runner_up == labels).any()


def test_trains_only_forget_rows_towards_the_original_models_neighbours(
    unlearn_data, context, original, batch_rows, monkeypatch
):
    seen = []

    def recording(frozen, images, labels, params, engine):
        result = neighbour_labels(frozen, images, labels, params, engine)
        seen.append((images, labels, result, [p.detach().clone() for p in frozen.parameters()]))
        return result

    monkeypatch.setattr(bs, "neighbour_labels", recording)
    method = MethodConfig("boundary-shrink", {"epochs": 2, "lr": 0.05, "batch_size": 8})
    model = unlearn(original, unlearn_data, method, context).model
    assert set().union(*batch_rows) == set(unlearn_data.forget_index.tolist())
    assert len(seen) == 2 * 2  # 16 forget rows, batches of 8, two epochs
    reference = copy.deepcopy(original).eval()
    for images, labels, result, weights in seen:
        assert not (result == labels).any()
        for weight, start in zip(weights, reference.parameters(), strict=True):
            assert torch.equal(weight, start)  # the attacked model is the original, frozen
        params = BoundaryShrinkParams()
        assert torch.equal(
            result, neighbour_labels(reference, images, labels, params, context.engine)
        )
    assert any(
        not torch.equal(a, b)
        for a, b in zip(original.parameters(), model.parameters(), strict=True)
    )


def test_shrinking_moves_forget_predictions_off_their_labels(unlearn_data, context, original):
    images, labels = _forget_batch(unlearn_data)
    engine = context.engine
    before = engine.logits(original, images).argmax(1)
    method = MethodConfig("boundary-shrink", {"epochs": 5, "lr": 0.05, "batch_size": 8})
    after = engine.logits(unlearn(original, unlearn_data, method, context).model, images)
    assert (after.argmax(1) == labels).float().mean() < (before == labels).float().mean()


def test_defaults_are_the_authors():
    params = BoundaryShrinkParams()
    assert (params.epochs, params.lr, params.batch_size) == (10, 1e-5, 64)
    assert (params.momentum, params.weight_decay) == (0.9, 0.0)
    assert (params.bound, params.step, params.iterations) == (0.1, 0.1, 1)


@pytest.mark.parametrize("field", ["bound", "step"])
def test_attack_sizes_must_be_positive(field):
    from medunlearn.config import ConfigError

    with pytest.raises(ConfigError, match=f"{field} must be > 0"):
        BoundaryShrinkParams(**{field: 0.0})
