"""KL control for PPO: the adaptive controller of Ziegler et al. (2019), and a fixed one.

"Fine-Tuning Language Models from Human Preferences", https://arxiv.org/abs/1909.08593,
section 2.2: the KL coefficient beta is steered so that the measured KL to the reference
tracks a target,

    e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)
    beta_{t+1} = beta_t * (1 + K_beta * e_t),   K_beta = n_steps / horizon

where n_steps is the number of episodes in the batch that produced KL_t. The same
update is the old TRL `AdaptiveKLController`. The clip bounds how fast beta moves: at
most a factor (1 ± 0.2 * n_steps / horizon) per PPO step.
"""
from dataclasses import dataclass


@dataclass
class FixedKLController:
    """A KL coefficient that never changes (`adaptive_kl` off)."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> float:
        """Keep the coefficient; returns it."""
        return self.value


@dataclass
class AdaptiveKLController:
    """Proportional control of the KL coefficient towards a KL target (Ziegler et al. 2019)."""

    value: float
    target: float
    horizon: float

    def __post_init__(self):
        if self.target <= 0:
            raise ValueError("kl_target: must be > 0")
        if self.horizon <= 0:
            raise ValueError("kl_horizon: must be > 0")

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move the coefficient after a batch of `n_steps` episodes measured `current_kl`; returns the new value."""
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        mult = 1.0 + proportional_error * n_steps / self.horizon
        self.value *= mult
        return self.value


def kl_controller(*, kl_coef: float, adaptive: bool, target: float, horizon: float):
    """The controller a PPO config asks for, starting at `kl_coef`."""
    if adaptive:
        return AdaptiveKLController(kl_coef, target, horizon)
    return FixedKLController(kl_coef)
