"""What an evaluation will cost, counted before it starts, in *image-timesteps*: one image
through one timestep of the unrolled network, forward only. A gradient pass (forward and
backward) counts as `GRADIENT_COST` of them. The attack counts are upper bounds: an image an
attack fools stops early.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GRADIENT_COST", "AttackCost", "CostEstimate"]

#: Forward passes one gradient pass costs, roughly (the backward pass costs about two).
GRADIENT_COST = 3


@dataclass(frozen=True)
class AttackCost:
    """The attack campaign's cost per attacked image.

    Attributes:
        cells: (attack, epsilon, readout) cells to craft.
        gradient: gradient image-timesteps per image over all cells, at most.
        forward: forward-only image-timesteps per image over all cells, at most.
    """

    cells: int = 0
    gradient: int = 0
    forward: int = 0


@dataclass(frozen=True)
class CostEstimate:
    """The cost of one ``predify evaluate`` run.

    Attributes:
        corruption_cells: corruption x severity cells, the clean one included.
        images: images per corruption cell.
        timesteps: T (each image runs timesteps 0..T).
        attack: the attack campaign's cost per attacked image.
        attack_images: images attacked.
    """

    corruption_cells: int
    images: int
    timesteps: int
    attack: AttackCost
    attack_images: int

    @property
    def corruption_work(self) -> int:
        """Forward image-timesteps of the corruption sweep."""
        return self.corruption_cells * self.images * (self.timesteps + 1)

    @property
    def attack_work(self) -> int:
        """Forward-equivalent image-timesteps of the attacks, at most."""
        per_image = GRADIENT_COST * self.attack.gradient + self.attack.forward
        return self.attack_images * per_image

    def line(self) -> str:
        """One line for the terminal, printed before the run starts."""
        return (
            f"cost estimate: corruptions {self.corruption_cells} cells x {self.images} images x "
            f"{self.timesteps + 1} timesteps = {self.corruption_work:.3g} image-timesteps; "
            f"attacks {self.attack.cells} cells x {self.attack_images} images, at most "
            f"{self.attack.gradient:.3g} gradient + {self.attack.forward:.3g} forward "
            f"image-timesteps per image = {self.attack_work:.3g} forward-equivalent "
            f"(a gradient pass ~ {GRADIENT_COST} forward)"
        )
