"""The initializer, regularizer and constraint a layer takes for each kind
of weight ("kernel", "recurrent", "bias"), stored, used and serialized as
Keras layers do: as `<kind>_initializer`, `<kind>_regularizer` and
`<kind>_constraint` attributes."""

import keras

from keras_seqext._validation import check_keras_object

# Each role's `get`, which takes a name, a config or an object.
GETTERS = {
    "initializer": keras.initializers.get,
    "regularizer": keras.regularizers.get,
    "constraint": keras.constraints.get,
}
ROLES = tuple(GETTERS)


def get_weight_argument(owner, name, value):
    """`value` of the argument `name` (such as `"kernel_initializer"`) of
    the layer class `owner`, as an object, by the `get` of its role."""
    getter = GETTERS[name.rsplit("_", 1)[1]]
    return check_keras_object(owner, name, value, getter)


def set_weight_arguments(layer, kind, initializer, regularizer, constraint):
    """Stores the three arguments of `kind` on `layer`, deserialized."""
    for role, value in zip(ROLES, (initializer, regularizer, constraint)):
        name = f"{kind}_{role}"
        setattr(
            layer, name, get_weight_argument(type(layer).__name__, name, value)
        )


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
