"""The project's exception types.

Every user-facing error says what was wrong and what to do; these classes let
callers (and tests) tell the kinds apart while still being ValueErrors.
"""


class TransferJaxError(ValueError):
  """Base class: a bad input or state that the user can fix."""


class DataError(TransferJaxError):
  """A data set, split or source task cannot be built as asked."""


class ConfigError(TransferJaxError):
  """A flag or config value is invalid or inconsistent."""


class CheckpointError(TransferJaxError):
  """A zoo/checkpoint directory is missing, corrupt or from other flags."""


class EstimatorError(TransferJaxError):
  """Inputs to an estimator or metric are unusable (NaN, too few points)."""


class TrainingError(RuntimeError):
  """Training diverged (non-finite loss)."""
