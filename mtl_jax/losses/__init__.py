"""Per-task masked losses and streaming metrics."""

from mtl_jax.losses.losses import masked_mean, task_loss, task_losses

__all__ = ["masked_mean", "task_loss", "task_losses"]
