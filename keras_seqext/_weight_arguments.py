"""The initializer, regularizer and constraint a layer takes for each kind
of weight ("kernel", "recurrent", "bias"), stored, used and serialized as
Keras layers do: as `<kind>_initializer`, `<kind>_regularizer` and
`<kind>_constraint` attributes."""

import keras

ROLES = ("initializer", "regularizer", "constraint")


def set_weight_arguments(layer, kind, initializer, regularizer, constraint):
    """Stores the three arguments of `kind` on `layer`, deserialized."""
    setattr(layer, f"{kind}_initializer", keras.initializers.get(initializer))
    setattr(layer, f"{kind}_regularizer", keras.regularizers.get(regularizer))
    setattr(layer, f"{kind}_constraint", keras.constraints.get(constraint))


def add_weight_of_kind(layer, kind, name, shape):
    """`layer.add_weight` with the initializer, regularizer and constraint
    of `kind`."""
    return layer.add_weight(
        name=name,
        shape=shape,
        initializer=getattr(layer, f"{kind}_initializer"),
        regularizer=getattr(layer, f"{kind}_regularizer"),
        constraint=getattr(layer, f"{kind}_constraint"),
    )


def weight_arguments_config(layer, kinds):
    """The config entries of the three arguments of each kind, serialized."""
    return {
        f"{kind}_{role}": keras.saving.serialize_keras_object(
            getattr(layer, f"{kind}_{role}")
        )
        for kind in kinds
        for role in ROLES
    }
