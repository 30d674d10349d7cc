"""synthesize streams its points chunk by chunk, yet the default params.yaml still writes the very bytes the
committed dvc.lock records: streaming changed how the file is written, not what it holds."""

import hashlib

from ruamel.yaml import YAML

from workspace import ROOT, declared


def test_the_default_params_write_the_outputs_the_committed_dvc_lock_records(reproduced_template):
    outs = YAML(typ="safe").load(ROOT / "dvc.lock")["stages"]["synthesize"]["outs"]
    recorded = {out["path"]: out["md5"] for out in outs}
    assert sorted(recorded) == sorted(declared("synthesize")["outs"])
    for path, md5 in recorded.items():  # the template ran `dvc repro` from scratch with the project's code
        assert hashlib.md5((reproduced_template / path).read_bytes()).hexdigest() == md5, path
