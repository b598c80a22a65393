"""EP-CE, the emotion-polarity-aware cross-entropy of AV-CANet.

For sample i with label y, logits z and prediction p = argmax z:
    w_i = 1 + lambda_{pi(y)} * [pi(p) != pi(y)]      (a constant: no gradient flows through w)
    L   = mean_i w_i * CE(z_i, y_i)
A prediction of the wrong polarity (Fear for Excitation) costs more than one of the right polarity
(Relaxation for Excitation). The total training loss sums L over the fused, audio and visual heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLARITIES = ("positive", "neutral", "negative")


def polarity_index(classes: tuple[str, ...] | list[str], polarity: dict[str, str]) -> torch.Tensor:
    """(n_classes,) polarity id of each class, in the taxonomy's class order."""
    return torch.tensor([POLARITIES.index(polarity[c]) for c in classes], dtype=torch.long)


def ep_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_polarity: torch.Tensor,
    lambdas: tuple[float, float, float] = (0.5, 0.5, 0.5),
    plain: bool = False,
) -> torch.Tensor:
    """EP-CE over a batch; `plain=True` gives the ordinary mean cross-entropy."""
    ce = F.cross_entropy(logits, target, reduction="none")
    if plain:
        return ce.mean()
    with torch.no_grad():
        class_polarity = class_polarity.to(logits.device)
        true_pol = class_polarity[target]
        pred_pol = class_polarity[logits.argmax(dim=1)]
        weight = 1.0 + torch.as_tensor(lambdas, dtype=ce.dtype, device=ce.device)[true_pol] * (pred_pol != true_pol)
    return (weight * ce).mean()


def total_loss(
    outputs: dict[str, torch.Tensor],
    target: torch.Tensor,
    class_polarity: torch.Tensor,
    lambdas: tuple[float, float, float] = (0.5, 0.5, 0.5),
    plain: bool = False,
) -> torch.Tensor:
    """L(fused) + L(audio head) + L(visual head)."""
    return sum(
        ep_ce_loss(outputs[key], target, class_polarity, lambdas, plain)
        for key in ("logits", "audio_logits", "visual_logits")
    )  # type: ignore[return-value]
