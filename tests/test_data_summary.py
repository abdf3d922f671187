"""experiments.data_summary on small data sets (no scenes: that pool is slow)."""
import os

from transferjax import io


def test_data_summary_run(tmp_path):
  from transferjax.data import summary as data_summary
  config = data_summary.Config(workdir=str(tmp_path), image_size=12,
                               datasets=("faces", "spots"),
                               split_target="digits:4,9", split_fraction=0.2)
  summary = data_summary.run(config)
  assert summary["datasets"]["faces"]["num_examples"] == 200
  assert summary["datasets"]["faces"]["image_size"] == 12
  assert summary["datasets"]["spots"]["image_size"] == 9  # Native, not 12.
  assert summary["datasets"]["spots"]["display_name"] == "spots (synthetic)"
  assert summary["datasets"]["spots"]["synthetic"] is True
  sizes = summary["split"]["sizes"]
  # digits has 181 fours and 180 nines: 20 % of 361 = 72 labeled.
  assert sizes["train"] + sizes["val"] == 72 and sum(sizes.values()) == 361
  on_disk = io.read_json(os.path.join(tmp_path, "summary.json"))
  assert on_disk["split"]["sizes"] == sizes
  for name in ("faces", "spots"):
    with open(tmp_path / f"examples_{name}.png", "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
