"""The norms of groups of gradients: the backend-specific piece of
`GradientNormMonitor`.

A norm must not overflow where it is itself finite, as the sum of squares
of float32 gradients past about 1e19 does. Two ways, by how the backend
runs the train step:

- TensorFlow and JAX compile it. One reduction per gradient, fused with
  its square (or absolute value), gives each group's sum. For the 2-norm,
  only if a sum is not finite (an overflow, or a gradient that is inf or
  nan) does the step take a second branch, which divides each group's
  gradients by their largest magnitude before the squares: dividing always
  would cost every step that rescaling pass.
- PyTorch runs it op by op, eagerly, where each extra operation is paid in
  full. There one `torch.linalg.vector_norm` per gradient, accumulated in
  float64, whose squares of float32 values cannot overflow, is the
  cheapest exact way.
"""

import math

import keras
from keras import ops


def group_norms(grads, groups, norm_type):
    """The `norm_type` (1, 2 or `math.inf`) norm of the gradients of each
    group.

    Args:
        grads: the gradients, None for no gradient.
        groups: lists of indices into `grads`.
        norm_type: 1, 2 or `math.inf`.

    Returns:
        A float32 vector, one norm per group (0 for a group without
        gradients); inf or nan where a gradient is.
    """
    groups = [
        [grads[i] for i in group if grads[i] is not None] for group in groups
    ]
    if keras.backend.backend() == "torch":
        return _float64_norms(groups, norm_type)
    return _compiled_norms(groups, norm_type)


def _compiled_norms(groups, norm_type):
    groups = [[ops.cast(g, "float32") for g in group] for group in groups]
    if norm_type == math.inf:
        return ops.stack([_largest(group) for group in groups])
    if norm_type == 1:
        # The sum overflows only where the norm itself does.
        return ops.stack(
            [_sum(ops.sum(ops.abs(g)) for g in group) for group in groups]
        )
    totals = ops.stack(
        [_sum(ops.sum(ops.square(g)) for g in group) for group in groups]
    )
    return ops.cond(
        ops.all(ops.isfinite(totals)),
        lambda: ops.sqrt(totals),
        lambda: ops.stack([_scaled_norm(group) for group in groups]),
    )


def _sum(values):
    return sum(values, ops.zeros((), "float32"))


def _largest(group):
    # `max` passes nan and inf on, on every backend.
    return ops.max(
        ops.stack(
            [ops.max(ops.abs(g)) for g in group] + [ops.zeros((), "float32")]
        )
    )


def _scaled_norm(group):
    """The 2-norm of `group`, its gradients divided by their largest
    magnitude before the squares."""
    largest = _largest(group)
    unit = ops.where(largest > 0, largest, 1.0)
    total = _sum(ops.sum(ops.square(g / unit)) for g in group)
    return ops.where(ops.isfinite(largest), unit * ops.sqrt(total), largest)


def _float64_norms(groups, norm_type):
    import torch

    norms = []
    for group in groups:
        gradient_norms = [
            torch.linalg.vector_norm(g, norm_type, dtype=torch.float64)
            for g in group
        ]
        # The norm of the gradients' norms is the norm of all their entries.
        norms.append(
            torch.linalg.vector_norm(
                torch.stack(
                    gradient_norms + [torch.zeros((), dtype=torch.float64)]
                ),
                norm_type,
            )
        )
    return torch.stack(norms).to(torch.float32)
