"""The ranking-method registry (``scoring.methods.METHODS``): every method
reads exactly the inputs it declares, runs with only those present, and a
wrong name is an error that lists the choices."""
import dataclasses

import numpy as np
import pytest
from test_scoring import _rank_inputs

from transferjax import study
from transferjax.errors import ConfigError
from transferjax.scoring import methods as methods_lib
from transferjax.scoring.methods import METHODS, NEEDS, RankConfig, score_method
from transferjax.sources import job as sources_job
from transferjax.sources.stream import PROVIDED


class _Recorder:
  """Wraps a ``RankInputs``; records which fields a method reads."""

  def __init__(self, inp):
    self._inp, self.read = inp, set()

  def __getattr__(self, name):
    self.read.add(name)
    return getattr(self._inp, name)


def _only(inp, needs):
  """``inp`` with every field not in ``needs`` removed (None)."""
  keep = {NEEDS[n] for n in needs} | {"labels"}
  return dataclasses.replace(inp, **{f.name: None for f in dataclasses.fields(inp)
                                     if f.name not in keep})


@pytest.mark.filterwarnings("ignore:.*joint cells")  # cmi_binned on n=60.
@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_reads_exactly_its_declared_needs(name):
  spec = METHODS[name]
  rec = _Recorder(_only(_rank_inputs(), spec.needs))
  scores = score_method(rec, RankConfig(method=name))
  assert scores.shape == (3,) and np.all(np.isfinite(scores)), scores
  read = rec.read - {"labels"}
  assert read == {NEEDS[n] for n in spec.needs}, (name, read, spec.needs)
  # Same scores as with every input present: the declared inputs are all it uses.
  np.testing.assert_array_equal(
      scores, score_method(_rank_inputs(), RankConfig(method=name)))


def test_needs_union_and_provided_methods():
  assert methods_lib.needs_of(("cmi_knn", "rbm")) == {
      "features", "target_net", "source_pool", "target_images"}
  given = methods_lib.methods_given(PROVIDED)
  assert "rbm" not in given and "cmi_knn" in given
  assert set(given) | {"rbm"} == set(METHODS)
  assert sources_job.resolve_methods(["all"]) == (given, True)
  with pytest.raises(ConfigError, match=r"\['rbm'\] need a zoo's source pool"):
    sources_job.resolve_methods(["rbm"])


def test_unknown_method_lists_the_choices(tmp_path):
  with pytest.raises(ConfigError, match=r"Unknown ranking method 'nope'.*'cmi_knn'.*'rbm'"):
    score_method(_rank_inputs(), RankConfig(method="nope"))
  with pytest.raises(ConfigError, match=r"Unknown ranking method\(s\) \['nope'\]; "
                                        r"choose from \[.*'rbm'.*\]"):
    study.StudyConfig(workdir=str(tmp_path), zoo_dir=str(tmp_path),
                      methods=("rbm", "nope"))
  with pytest.raises(ValueError, match="unknown need"):
    methods_lib.Method("x", lambda *a: None, frozenset({"pixels"}))


def test_rbm_without_its_inputs_is_a_clear_error():
  inp = dataclasses.replace(_rank_inputs(), source_pool_models=None)
  with pytest.raises(ConfigError, match="needs an RBM per source"):
    score_method(inp, RankConfig(method="rbm"))


def test_score_zoo_refuses_unmet_needs_before_training():
  """A ranking run has no source pool: asking it for the RBM fails at once
  (zoo and split are never touched), naming the methods it can run."""
  from transferjax.scoring.rank import RankJob, score_zoo
  with pytest.raises(ConfigError, match=r"\['rbm'\] need an RBM per source.*'cmi_knn'"):
    score_zoo(None, None, RankJob(rank=RankConfig(method="rbm")))
  with pytest.raises(ConfigError, match=r"Unknown ranking method\(s\) \['nope'\]"):
    score_zoo(None, None, RankJob(), methods=("cmi_knn", "nope"))
