"""UserIndexer end to end on small real texts (MiniLM): round trip, distinct codes, report, edge cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ulmrec_eval.runtime.errors import InputError
from ulmrec_index import IndexerConfig, UserIndexer, UserText, load_index, parse_code
from ulmrec_index.artifact import FUSION_FILE, INDEX_FILE, QUANTIZER_FILE, REPORT_FILE, TEXTS_FILE
from ulmrec_index.quantizers import rqvae

sys.path.insert(0, str(Path(__file__).parent))
from index_fixtures import theme_of, themed_users

torch.set_num_threads(1)

# Small and quick: 3 levels x 8 codes for 48 users; a few rqvae epochs.
RQVAE = {"kind": "rqvae", "levels": 3, "codebook_size": 8}
RQVAE_FAST: dict[str, Any] = {"epochs": 20, "batch_size": 16, "hidden_dims": [128], "latent_dim": 16}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emb-cache")


def _config(cache_dir: Path, **kw: Any) -> IndexerConfig:
    base: dict[str, Any] = {"quantizer": {**RQVAE, **RQVAE_FAST}, "cache_dir": cache_dir, "joint_epochs": 2}
    base.update(kw)
    return IndexerConfig.model_validate(base)


@pytest.fixture(scope="module")
def fitted(cache_dir: Path) -> UserIndexer:
    users = [*themed_users(), {"user_id": "silent-1", "texts": []}, {"user_id": "silent-2", "texts": ["  "]}]
    ref = {
        "levels": ["a", "b", "c"],
        "codebook_size": 8,
        "codes": {u["user_id"]: [i % 8, (i // 8) % 8, 0] for i, u in enumerate(themed_users())},
    }
    return UserIndexer(_config(cache_dir)).fit(users, reference=ref)


def test_every_user_gets_a_distinct_code_and_the_report_says_how(fitted: UserIndexer) -> None:
    codes = np.array(list(fitted.codes.values()))
    assert codes.shape[0] == 50
    assert len({tuple(c) for c in codes}) == 50
    report = fitted.report
    assert report is not None
    assert report.repair.collisions_after == 0
    assert report.repair.collisions_before == report.repair.n_collided_before
    assert report.n_users_without_text == 2
    assert all(1 <= level.used <= level.codebook_size for level in report.ours.levels)
    assert report.reconstruction_mse >= 0
    assert np.isfinite(report.reconstruction_rel)
    assert report.reference is not None
    assert report.reference_users_matched == 48
    assert report.reference.collisions == 0


def test_reported_reconstruction_error_matches_an_independent_computation(fitted: UserIndexer) -> None:
    """The report's MSE is ``mean_u ||x_u − decoder(Σ_l e_l[code_u,l])||²`` over the fused users, computed
    here from the rqvae's own codebooks and decoder (not through ``decode``), and every level counts."""
    report, quantizer, x = fitted.report, fitted.quantizer, fitted.fused
    assert report is not None
    assert x is not None
    assert isinstance(quantizer, rqvae.RQVAE)
    assert quantizer.decoder is not None
    ids = [str(u["user_id"]) for u in [*themed_users(), {"user_id": "silent-1"}, {"user_id": "silent-2"}]]
    assert list(fitted.codes) == ids                                 # row u of x is user ids[u]
    codes = torch.tensor([fitted.codes[uid][:3] for uid in ids])      # the quantizer's 3 levels
    books = quantizer.state_dict()["codebooks"]

    def mse(levels: int) -> tuple[float, float]:
        latent = sum(books[level][codes[:, level]] for level in range(levels))
        with torch.no_grad():
            recon = quantizer.decoder(latent) * quantizer.x_scale + quantizer.x_mean
        err = float(((x - recon) ** 2).sum(1).mean())
        return err, err / float(((x - x.mean(0)) ** 2).sum(1).mean())

    full, rel = mse(3)
    assert report.reconstruction_mse == pytest.approx(full, rel=1e-5)
    assert report.reconstruction_rel == pytest.approx(rel, rel=1e-5)
    assert rel < 1.0                                                  # better than the mean vector
    assert full < mse(1)[0]                                           # the levels after the first count


def test_themes_cluster_under_the_first_code(fitted: UserIndexer) -> None:
    report = fitted.report
    assert report is not None
    first = report.ours.coherence[0]
    assert first.ratio is not None
    assert first.ratio > 1.2
    # and more alike than in the meaningless reference (codes by row number)
    assert report.reference is not None
    ref_ratio = report.reference.coherence[0].ratio
    assert ref_ratio is not None
    assert first.ratio > ref_ratio
    # majority theme per first code: most users share their first code with same-theme users
    by_code: dict[int, list[str]] = {}
    for uid, code in fitted.codes.items():
        if not uid.startswith("silent"):
            by_code.setdefault(code[0], []).append(theme_of(uid))
    purity = sum(max(members.count(t) for t in set(members)) for members in by_code.values()) / 48
    assert purity > 0.5


def test_save_load_round_trip(fitted: UserIndexer, tmp_path: Path, cache_dir: Path) -> None:
    folder = fitted.save(tmp_path / "idx")
    assert {p.name for p in folder.iterdir()} == {
        INDEX_FILE,
        QUANTIZER_FILE,
        FUSION_FILE,
        TEXTS_FILE,
        REPORT_FILE,
    }
    raw = json.loads((folder / INDEX_FILE).read_text())
    assert raw["schema_version"] == 1
    assert raw["token_format"][:3] == ["<a_{}>", "<b_{}>", "<c_{}>"]
    assert load_file(str(folder / FUSION_FILE))["id_embedding"].shape == (50, 64)
    loaded = UserIndexer.load(folder, cache_dir=cache_dir)
    assert loaded.codes == fitted.codes
    artifact = load_index(folder)
    uid = "hair-0"
    assert parse_code(artifact.token(uid), artifact.token_format) == fitted.codes[uid]
    assert loaded.encode([UserText(user_id=uid, texts=["ignored"])]) == [fitted.codes[uid]]
    # the loaded quantizer is the fitted one: same codes for the same vectors
    assert fitted.fusion is not None
    assert loaded.fusion is not None
    assert fitted.quantizer is not None
    assert loaded.quantizer is not None
    x = torch.randn(5, 384)
    torch.testing.assert_close(loaded.quantizer.encode(x), fitted.quantizer.encode(x))


def test_new_users_get_free_codes(fitted: UserIndexer) -> None:
    new = [
        UserText(user_id=f"new-{i}", texts=["Loves matte red lipstick and waterproof mascara."])
        for i in range(3)
    ]
    codes = fitted.encode([*new, UserText(user_id="hair-1")])
    taken = {tuple(c) for c in fitted.codes.values()}
    assert all(tuple(c) not in taken for c in codes[:3])
    assert len({tuple(c) for c in codes[:3]}) == 3
    assert codes[3] == fitted.codes["hair-1"]


def test_second_fit_hits_the_cache_and_is_deterministic(fitted: UserIndexer, cache_dir: Path) -> None:
    users = [*themed_users(), {"user_id": "silent-1", "texts": []}, {"user_id": "silent-2", "texts": ["  "]}]
    again = UserIndexer(_config(cache_dir)).fit(users)
    assert again.report is not None
    assert again.report.n_texts_encoded == 0
    assert again.codes == fitted.codes


def test_joint_training_moves_the_fusion_weights(cache_dir: Path) -> None:
    users = themed_users()[:24]
    untrained = UserIndexer(_config(cache_dir, joint_epochs=0)).fit(users)
    trained = UserIndexer(_config(cache_dir, joint_epochs=2)).fit(users)
    assert untrained.fusion is not None
    assert trained.fusion is not None
    assert not torch.allclose(untrained.fusion.id_embedding, trained.fusion.id_embedding)
    assert trained.artifact is not None
    assert trained.artifact.fusion.joint_epochs == 2


def test_non_trainable_quantizer_runs_attention_as_mean(cache_dir: Path) -> None:
    cfg = _config(cache_dir, quantizer={"kind": "rqkmeans", "levels": 2, "codebook_size": 8})
    indexer = UserIndexer(cfg).fit(themed_users())
    assert indexer.artifact is not None
    assert indexer.artifact.fusion.effective == "mean"
    assert indexer.report is not None
    assert "ran as 'mean'" in indexer.report.notes[0]


def test_identical_texts_collide_without_id_and_are_repaired(cache_dir: Path) -> None:
    users = [{"user_id": f"u{i}", "texts": ["Loves floral perfume."]} for i in range(12)] + themed_users()[
        :12
    ]
    plain = UserIndexer(_config(cache_dir, fusion="none")).fit(users)
    assert plain.report is not None
    assert plain.report.repair.collisions_before >= 11  # 12 identical vectors share one code
    assert plain.report.repair.collisions_after == 0
    assert len({tuple(c) for c in plain.codes.values()}) == 24
    with_id = UserIndexer(_config(cache_dir, fusion="mean", id_weight=0.5)).fit(users)
    assert with_id.report is not None
    assert with_id.report.repair.collisions_before < plain.report.repair.collisions_before


def test_fewer_users_than_codes(cache_dir: Path) -> None:
    users = themed_users()[::10]  # 5 users, K = 8 per level
    indexer = UserIndexer(_config(cache_dir, quantizer={**RQVAE, **RQVAE_FAST, "codebook_size": 16})).fit(
        users
    )
    assert len({tuple(c) for c in indexer.codes.values()}) == 5
    assert indexer.report is not None
    assert all(level.used <= 5 for level in indexer.report.ours.levels)


def test_load_index_names_the_file_of_a_corrupt_artifact(tmp_path: Path) -> None:
    (tmp_path / INDEX_FILE).write_text('{"schema_version": 1,\n  "codes": }\n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"{INDEX_FILE}:2: malformed JSON"):
        load_index(tmp_path)
    (tmp_path / INDEX_FILE).write_text('{"schema_version": 1, "codes": {}}\n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"{INDEX_FILE}: invalid IndexArtifact: "):
        load_index(tmp_path)


def test_a_build_reports_pipeline_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `ulmrec run` ($ULMREC_EVENTS set) encoding reports texts done, and each later phase a line."""
    from ulmrec_eval.runtime.events import read_events

    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("ULMREC_EVENTS", str(events_file))
    users = themed_users()
    UserIndexer(_config(tmp_path / "fresh-cache")).fit(users)
    events = read_events(events_file)
    encoding = [e for e in events if e.message == "encoding texts"]
    n_texts = len({t for u in users for t in u["texts"]})
    assert encoding
    assert encoding[-1].step == encoding[-1].total == n_texts
    assert [e.step for e in encoding] == sorted(e.step for e in encoding)
    messages = [e.message or "" for e in events if e.step is None]
    assert messages[0].startswith("fitting rqvae on 48 users")
    assert messages[1].startswith("joint training")
    assert messages[2] == "making every code distinct"
