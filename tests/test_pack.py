"""``mopo-kit pack``: a killed run moved as one archive continues elsewhere — bit-exact with its
model pool, refilled by fresh rollouts (and recorded as such) without it."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from mopo_kit.cli import main as cli_main
from mopo_kit.mopo import MOPO
from tests.test_exact_resume import _config, _final_weights, _Killed
from tests.test_mopo import hopper_file  # noqa: F401  (module fixture)


@pytest.fixture(scope="module")
def runs(hopper_file, tmp_path_factory):  # noqa: F811
    """A shared model (a sweep's layout), the uninterrupted run on it, and a run killed after epoch 4."""
    root = tmp_path_factory.mktemp("pack")
    MOPO(_config(hopper_file)).fit(root / "base")  # its fitted model plays the sweep's shared one
    shared = root / "shared-model"
    shutil.copytree(root / "base" / "dynamics", shared)

    def cfg():
        config = _config(hopper_file)
        config.dynamics_dir = str(shared)
        config.policy.params["retain_rollouts"] = 2  # so that a pool-less resume at an epoch boundary owes one rollout
        return config

    MOPO(cfg()).fit(root / "straight")

    def kill_after_checkpoint(row):
        if row["epoch"] == 4:
            raise _Killed

    with pytest.raises(_Killed):
        MOPO(cfg()).fit(root / "killed", callback=kill_after_checkpoint)
    return root


def _unpack(archive, where):
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    return where / "killed"


def test_packed_with_its_pool_the_run_resumes_elsewhere_to_the_uninterrupted_weights(runs, tmp_path, capsys):
    archive = tmp_path / "killed.tar.gz"
    assert cli_main(["pack", str(runs / "killed"), str(archive), "--with-pool"]) == 0
    assert "model pool kept" in capsys.readouterr().out
    moved = _unpack(archive, tmp_path / "elsewhere")
    payload = json.loads((moved / "config.json").read_text())
    assert payload["config"]["dynamics_dir"] is None and (moved / "dynamics" / "dynamics.pt").exists(), "the shared model travels inside"
    assert payload["moves"][0]["model_pool"] == "kept" and payload["moves"][0]["at_epoch"] == 4
    shutil.rmtree(runs / "shared-model.away", ignore_errors=True)
    (runs / "shared-model").rename(runs / "shared-model.away")  # the other machine has no shared model
    try:
        MOPO.resume(moved)
    finally:
        (runs / "shared-model.away").rename(runs / "shared-model")
    straight, resumed = _final_weights(runs / "straight"), _final_weights(moved)
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=f"actor weight {key} differs after the move")
    assert json.loads((moved / "config.json").read_text())["moves"] == payload["moves"], "the resume keeps the record of the move"


def test_packed_without_its_pool_the_run_refills_it_and_says_so(runs, tmp_path, capsys):
    full, lean = tmp_path / "full.tar.gz", tmp_path / "lean.tar.gz"
    assert cli_main(["pack", str(runs / "killed"), str(full), "--with-pool"]) == 0
    assert cli_main(["pack", str(runs / "killed"), str(lean)]) == 0
    out = capsys.readouterr().out
    assert "model pool left out" in out and "mopo-kit train --resume killed" in out
    assert lean.stat().st_size < full.stat().st_size
    moved = _unpack(lean, tmp_path / "elsewhere")
    state = torch.load(moved / "checkpoint" / "state.pt", weights_only=True)
    assert not any(k.startswith("pool.") for k in state) and int(state["steps"]) == 4 * 50
    MOPO.resume(moved)
    assert "refilling it with" in capsys.readouterr().err
    move = json.loads((moved / "config.json").read_text())["moves"][-1]
    assert move["model_pool"] == "dropped" and move["pool_refilled"] == {"rollouts": 1, "at_step": 200}
    epochs = [json.loads(line)["epoch"] for line in (moved / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5], "every epoch exactly once"
    assert all(torch.isfinite(w).all() for w in _final_weights(moved).values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="what a CPU-only machine says of a run that last ran on a GPU")
def test_a_run_back_from_a_gpu_is_one_line_naming_the_device_option_and_nothing_is_touched(runs, tmp_path, capsys):
    archive = tmp_path / "lean.tar.gz"
    assert cli_main(["pack", str(runs / "killed"), str(archive)]) == 0
    moved = _unpack(archive, tmp_path / "back")
    payload = json.loads((moved / "config.json").read_text())
    payload["config"]["device"] = "cuda:0"  # as `train --resume RUN --device cuda` on the lent GPU left it
    (moved / "config.json").write_text(json.dumps(payload))
    before = {p.relative_to(moved): p.read_bytes() for p in moved.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(moved)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last ran on cuda:0" in err[0] and "--device cpu" in err[0], err
    assert {p.relative_to(moved): p.read_bytes() for p in moved.rglob("*") if p.is_file() and p.name != ".lock"} == {
        k: v for k, v in before.items() if k.name != ".lock"}, "nothing written"


def test_pack_refuses_what_it_cannot_move_in_one_line(runs, tmp_path, capsys):
    assert cli_main(["pack", str(tmp_path), str(tmp_path / "a.tar.gz")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    existing = tmp_path / "exists.tar.gz"
    existing.write_bytes(b"keep me")
    assert cli_main(["pack", str(runs / "killed"), str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err and existing.read_bytes() == b"keep me"


def test_a_checkpoint_that_pickled_the_dataset_still_loads(tmp_path):
    """Checkpoints before the dataset left ``sac.zip`` (17 of 20 MB on hopper-mixed) resume as before."""
    from stable_baselines3.common.save_util import load_from_zip_file

    from tests.test_device import _sac_setup, learned_sac

    data, model, sac = learned_sac()
    sac.save(tmp_path / "new")
    assert "replay_buffer_kwargs" not in load_from_zip_file(tmp_path / "new" / "sac.zip", load_data=True)[0]
    sac.save(tmp_path / "old")
    sac.sac.save(tmp_path / "old" / "sac.zip")  # the earlier format: everything SB3 saves by default
    assert "replay_buffer_kwargs" in load_from_zip_file(tmp_path / "old" / "sac.zip", load_data=True, custom_objects={"replay_buffer_kwargs": None})[0]
    assert (tmp_path / "old" / "sac.zip").stat().st_size > (tmp_path / "new" / "sac.zip").stat().st_size
    for folder in ("new", "old"):
        fresh = _sac_setup(data, model, seed=5)
        fresh.load(tmp_path / folder)
        assert fresh.num_steps == 20
        for (name, a), (_, b) in zip(sac.sac.policy.state_dict().items(), fresh.sac.policy.state_dict().items()):
            assert torch.equal(a, b), (folder, name)


def test_unpack_refuses_what_is_not_a_packed_run_in_one_line(tmp_path):
    from mopo_kit.errors import MopoKitError
    from mopo_kit.experiments.pack import unpack_run

    stray = tmp_path / "notes.txt"
    stray.write_text("not a run")
    archive = tmp_path / "stray.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(stray, arcname="notes/notes.txt")
    with pytest.raises(MopoKitError, match=r"stray\.tar\.gz: not a run packed by mopo-kit pack"):
        unpack_run(archive, tmp_path / "trials")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not gzip at all")
    with pytest.raises(MopoKitError, match=r"broken\.tar\.gz: cannot unpack"):
        unpack_run(tmp_path / "broken.tar.gz", tmp_path / "trials")
    assert not (tmp_path / "trials").exists(), "nothing made"


def test_a_resume_on_other_data_under_the_same_name_is_one_line_and_touches_nothing(hopper_file, tmp_path):  # noqa: F811
    """A moved run finds its dataset regenerated by another torch build (or another file at its
    path): it must not train on it. Checked against the checksum the run recorded at its start,
    and for runs from before that record, against its model's fit report."""
    from mopo_kit.data.d4rl_io import read_d4rl_hdf5, write_d4rl_hdf5
    from mopo_kit.data.dataset import TransitionDataset
    from mopo_kit.errors import MopoKitError

    data_file = tmp_path / "hopper-random-small.hdf5"
    shutil.copy(hopper_file, data_file)
    config = _config(data_file)
    config.epochs = 1
    MOPO(config).fit(tmp_path / "run")
    run = tmp_path / "run"
    payload = json.loads((run / "config.json").read_text())
    assert len(payload["resolved"]["dataset_sha256"]) == 64

    original = read_d4rl_hdf5(data_file)
    arrays = original.arrays()
    arrays["rewards"] = arrays["rewards"] + 1e-3  # another build's floats: same shapes, other bytes
    data_file.unlink()
    write_d4rl_hdf5(TransitionDataset(**arrays, metadata=original.metadata), data_file, metadata=original.metadata)
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(MopoKitError, match=r"dataset '.*hopper-random-small\.hdf5' here has sha256 \w{12}…, not \w{12}… as the data the run started on"):
        MOPO.resume(run, epochs=2)
    del payload["resolved"]["dataset_sha256"]  # a run from before the record: its model's fit report speaks
    (run / "config.json").write_text(json.dumps(payload))
    with pytest.raises(MopoKitError, match=r"as the data the run's model was fit on"):
        MOPO.resume(run, epochs=2)
    assert (run / "metrics.jsonl").read_bytes() == before and not (run / "checkpoint.tmp").exists()


def test_packed_without_its_model_it_continues_on_the_same_refit_and_refuses_another(runs, tmp_path, capsys):
    """The campaigns' carried runs: a few MB without pool, model and logs; the model is fitted
    again where the run goes, and a model that came out otherwise is one line, nothing touched."""
    from mopo_kit.dynamics.storage import dynamics_checksum
    from mopo_kit.errors import MopoKitError
    from mopo_kit.experiments.pack import unpack_run

    full, lean = tmp_path / "full.tar.gz", tmp_path / "lean.tar.gz"
    assert cli_main(["pack", str(runs / "killed"), str(full)]) == 0
    assert cli_main(["pack", str(runs / "killed"), str(lean), "--without-model", "--without-logs"]) == 0
    assert "model left out (sha256" in capsys.readouterr().out
    with tarfile.open(lean) as tar:
        names = tar.getnames()
    assert not any("/dynamics/" in n for n in names) and lean.stat().st_size < full.stat().st_size
    recorded = json.loads((runs / "killed" / "config.json").read_text())["resolved"]["dynamics_sha256"]
    assert recorded == dynamics_checksum(runs / "shared-model"), "the run recorded its model at its start"

    refit = tmp_path / "machine-b" / "model"  # the other machine's sweep fitted the same model again
    shutil.copytree(runs / "shared-model", refit)
    back = unpack_run(lean, tmp_path / "machine-b" / "trials", dynamics_dir=refit)
    moved = tmp_path / "machine-b" / "trials" / "killed"
    payload = json.loads((moved / "config.json").read_text())
    assert back["epoch"] == 4 and payload["config"]["dynamics_dir"] == str(refit)
    assert payload["moves"][-1]["dynamics"] == "left out" and payload["moves"][-1]["dynamics_sha256"] == recorded

    other = tmp_path / "machine-c" / "model"  # a refit by another build: other weights
    shutil.copytree(runs / "shared-model", other)
    state = torch.load(other / "dynamics.pt", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = state[key] + 1e-6
    torch.save(state, other / "dynamics.pt")
    unpack_run(lean, tmp_path / "machine-c" / "trials", dynamics_dir=other)
    refused = tmp_path / "machine-c" / "trials" / "killed"
    before = {p.relative_to(refused): p.read_bytes() for p in refused.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(MopoKitError, match=r"dynamics model .*model has sha256 \w{12}…, not \w{12}… as the model the run started on"):
        MOPO.resume(refused)
    after = {p.relative_to(refused): p.read_bytes() for p in refused.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after.keys() == before.keys() and after[Path("metrics.jsonl")] == before[Path("metrics.jsonl")]
    assert json.loads(after[Path("config.json")])["resolved"]["dynamics_sha256"] == recorded, "the record survives the refusal"

    MOPO.resume(moved)  # the same refit: continues (pool refilled), every epoch once
    epochs = [json.loads(line)["epoch"] for line in (moved / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5]


def test_a_live_pack_reads_one_whole_checkpoint_while_the_run_swaps_it(runs, tmp_path, monkeypatch):
    """A run being trained holds its lock; ``--live`` packs it anyway, from its last whole
    checkpoint: a checkpoint swapped in the middle of the read is read again, never mixed."""
    from mopo_kit.dir_lock import directory_lock
    from mopo_kit.experiments import pack as pack_module

    run = tmp_path / "training"
    shutil.copytree(runs / "killed", run)
    whole = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes() + b'{"epoch": 5, "ret')  # a line being appended
    real_copy, swaps = shutil.copyfileobj, []

    def copy_then_swap(source, target, *args):
        real_copy(source, target, *args)
        if not swaps:  # the training process swaps in a newer checkpoint after the first file is read
            swaps.append(1)
            staging = run / "checkpoint.tmp"
            shutil.copytree(run / "checkpoint", staging)
            (staging / "progress.json").write_text(json.dumps({"epoch": 6, "gradient_steps": 300}))
            (run / "checkpoint").rename(run / "checkpoint.old")
            staging.rename(run / "checkpoint")
            shutil.rmtree(run / "checkpoint.old")

    monkeypatch.setattr(pack_module.shutil, "copyfileobj", copy_then_swap)
    with directory_lock(run, "a MOPO run"):  # its process holds the lock
        with pytest.raises(Exception, match="being packed|in use|locked|held"):
            pack_module.pack_run(run, tmp_path / "locked.tar.gz")
        summary = pack_module.pack_run(run, tmp_path / "live.tar.gz", live=True)
    assert swaps and summary["epoch"] == 6, "the swapped-in checkpoint, read whole the second time"
    with tarfile.open(tmp_path / "live.tar.gz") as tar:
        progress = json.loads(tar.extractfile("training/checkpoint/progress.json").read())
        metrics = tar.extractfile("training/metrics.jsonl").read().decode()
        state = torch.load(io.BytesIO(tar.extractfile("training/checkpoint/state.pt").read()), weights_only=True)
        names = tar.getnames()
    assert progress["epoch"] == 6 and int(state["steps"]) == 200 and "pool.obs" not in state
    assert metrics == whole, "only whole metric lines"
    assert not any(".pack-" in n or "checkpoint.old" in n for n in names)
    assert not list(tmp_path.glob(".pack-*")), "no scratch left"


def test_a_model_travels_once_and_what_is_not_one_is_one_line(runs, tmp_path):
    """A sweep's shared model packed apart (campaigns carry it once for all runs of its seed); a
    model already in place is kept, not replaced; a stray archive or folder is one line."""
    from mopo_kit.dynamics.storage import dynamics_checksum
    from mopo_kit.errors import MopoKitError
    from mopo_kit.experiments.pack import pack_model, unpack_model

    packed = pack_model(runs / "shared-model", tmp_path / "model.tar.gz")
    assert packed["dynamics_sha256"] == dynamics_checksum(runs / "shared-model")
    back = unpack_model(tmp_path / "model.tar.gz", tmp_path / "carried")
    assert back["dynamics_sha256"] == packed["dynamics_sha256"] and (tmp_path / "carried" / "shared-model" / "dynamics.pt").exists()
    (tmp_path / "carried" / "shared-model" / "marker").write_text("kept")
    unpack_model(tmp_path / "model.tar.gz", tmp_path / "carried")
    assert (tmp_path / "carried" / "shared-model" / "marker").read_text() == "kept", "a model in place is not replaced"
    with pytest.raises(MopoKitError, match=r"not a dynamics model directory"):
        pack_model(tmp_path, tmp_path / "other.tar.gz")
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("no model")
    with tarfile.open(tmp_path / "stray.tar.gz", "w:gz") as tar:
        tar.add(stray, arcname="stray")
    with pytest.raises(MopoKitError, match=r"stray\.tar\.gz: holds no dynamics model"):
        unpack_model(tmp_path / "stray.tar.gz", tmp_path / "carried")
    assert sorted(p.name for p in (tmp_path / "carried").iterdir()) == ["shared-model"], "nothing left behind"
