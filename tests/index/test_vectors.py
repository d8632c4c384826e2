"""Bring your own vectors / encoder: fit_vectors, encode_vectors (cold start), int ids, custom encoders, an
index whose encoder cannot be re-created, and `ulmrec-index build --vectors --ids`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from typer.testing import CliRunner

from ulmrec_eval.runtime.errors import InputError
from ulmrec_index import IndexerConfig, UserIndexer, UserText
from ulmrec_index.artifact import load_index
from ulmrec_index.cli import app
from ulmrec_index.encoders import EncoderError
from ulmrec_index.indexer import IndexerError
from ulmrec_index.testing import conformance_data
from ulmrec_index.uniqueness import collision_count

QUANT = {"kind": "rqkmeans", "levels": 2, "codebook_size": 8}


def _vectors(n: int = 120, dim: int = 16, seed: int = 0) -> np.ndarray:
    return conformance_data(n, dim, seed=seed, dup_fraction=0.2).numpy()  # 20% exact duplicates


def _all_distinct(codes: Sequence[Sequence[int]]) -> bool:
    return collision_count(torch.tensor([list(c) for c in codes])) == 0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[UserIndexer, np.ndarray, Path]:
    x = _vectors()
    indexer = UserIndexer(IndexerConfig(quantizer=QUANT)).fit_vectors(np.arange(1000, 1120), x)
    folder = indexer.save(tmp_path_factory.mktemp("vec") / "index")
    return indexer, x, folder


def test_fit_vectors_gives_the_full_artifact(built: tuple[UserIndexer, np.ndarray, Path]) -> None:
    indexer, x, folder = built
    assert indexer.report is not None
    assert indexer.report.n_users == len(x)
    assert indexer.report.repair.collisions_after == 0
    assert indexer.report.repair.collisions_before > 0  # the duplicates collided and were repaired
    assert _all_distinct(indexer.codes.values())
    artifact = load_index(folder)
    assert artifact.encoder.kind == "precomputed"
    assert artifact.encoder.dim == x.shape[1]
    assert artifact.fusion.effective == "none"  # the vectors as given
    assert list(artifact.codes)[:2] == ["1000", "1001"]  # int ids are stored as decimal strings
    assert not (folder / "texts.jsonl").exists()


def test_save_load_lookup_and_cold_start(built: tuple[UserIndexer, np.ndarray, Path]) -> None:
    indexer, x, folder = built
    loaded = UserIndexer.load(folder)
    assert loaded.token(1005) == indexer.token("1005") == loaded.token(np.int64(1005))  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    new = np.concatenate([x[:5], x[:5] + 1e-6, rng.standard_normal((5, x.shape[1])).astype(np.float32)])
    ids = [*range(5000, 5015)]
    codes = loaded.encode_vectors(ids, torch.from_numpy(new))
    assert codes == indexer.encode_vectors(ids, new)  # the same after a save/load round trip
    everyone = [*loaded.codes.values(), *codes]
    assert _all_distinct(everyone)  # copies of indexed users and of each other still get free codes
    known = loaded.encode_vectors(["1000", 1001], x[:2])
    assert known == [loaded.codes["1000"], loaded.codes["1001"]]


def test_text_encoding_on_a_vector_index_says_what_to_do(built: tuple[UserIndexer, np.ndarray, Path]) -> None:
    loaded = UserIndexer.load(built[2])
    with pytest.raises(EncoderError, match=r"precomputed 16-d vectors.*encode_vectors"):
        loaded.encode([UserText(user_id="new", texts=["likes red lipstick"])])
    assert loaded.encode([{"user_id": 1000}]) == [loaded.codes["1000"]]  # indexed users need no encoder


@pytest.mark.parametrize(("ids", "vectors", "message"), [
    ([1, 2], np.zeros((3, 4)), "3 rows but there are 2 user ids"),
    ([1, "1"], np.zeros((2, 4)), "duplicated user_id '1'"),
    ([1.5, 2], np.zeros((2, 4)), "must be a non-empty str or an int"),
    ([1, 2], np.array([[0.0, np.nan], [0, 0]]), "NaN/inf in 1 row"),
    ([1, 2], [[0.0, 1.0], [1.0, 0.0]], "numpy array or torch tensor"),
])
def test_bad_vectors_are_one_clear_error(ids: list[object], vectors: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        UserIndexer(IndexerConfig(quantizer=QUANT)).fit_vectors(ids, vectors)  # type: ignore[arg-type]


def test_encode_vectors_checks_the_dimension(built: tuple[UserIndexer, np.ndarray, Path]) -> None:
    with pytest.raises(InputError, match="dimension 3, the index was built on 16"):
        built[0].encode_vectors([1], np.zeros((1, 3)))


def test_default_rqvae_indexes_bf16_torch_vectors(tmp_path: Path) -> None:
    x = torch.from_numpy(_vectors(200, 8, seed=3)).bfloat16()
    config = IndexerConfig(quantizer={"kind": "rqvae", "levels": 2, "codebook_size": 8, "min_steps": 60})
    indexer = UserIndexer(config).fit_vectors([f"u{i}" for i in range(200)], x)
    assert indexer.report is not None
    assert indexer.report.repair.collisions_after == 0
    assert indexer.report.reconstruction_rel < 0.5
    loaded = UserIndexer.load(indexer.save(tmp_path / "i"))
    assert _all_distinct([*loaded.codes.values(), *loaded.encode_vectors(["n1", "n2"], x[:2])])


# ------------------------------------------------------------------------------------ custom encoders
class HashEncoder:
    """A deterministic toy encoder: character-trigram counts hashed into D buckets, L2-normalised."""

    def __init__(self, dim: int = 32, salt: str = "") -> None:
        self.dim = dim
        self.salt = salt
        self.identity = f"hash-trigrams-{dim}{salt}"
        self.name = "hash-trigrams"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for i in range(len(text) - 2):
                digest = hashlib.sha256((self.salt + text[i : i + 3]).encode()).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


TEXTS = ["matte red lipstick", "argan oil for curly hair", "mineral sunscreen spf 50", "gel nail polish",
         "floral perfume", "vitamin c serum", "waterproof mascara", "dry shampoo"]


def test_a_custom_encoder_object_plugs_in(tmp_path: Path) -> None:
    users = [UserText(user_id=i, texts=[TEXTS[i % 8], TEXTS[(i * 3) % 8]]) for i in range(40)]
    indexer = UserIndexer(IndexerConfig(quantizer=QUANT, fusion="mean"), encoder=HashEncoder())
    indexer.fit(users)
    folder = indexer.save(tmp_path / "custom")
    saved = load_index(folder)
    info = saved.encoder
    assert (info.kind, info.identity, info.dim) == ("custom", "hash-trigrams-32", 32)
    new = [UserText(user_id="new", texts=["red lipstick"])]
    # without the encoder object: lookups work, encoding new text says what it needs
    blind = UserIndexer.load(folder)
    assert blind.token(3) == indexer.token(3)
    with pytest.raises(EncoderError, match=r"hash-trigrams.*UserIndexer.load\(folder, encoder=\.\.\.\)"):
        blind.encode(new)
    # with it: the same codes as before saving
    loaded = UserIndexer.load(folder, encoder=HashEncoder())
    assert loaded.encode(new) == indexer.encode(new)
    with pytest.raises(IndexerError, match="differs from the index's"):
        UserIndexer.load(folder, encoder=HashEncoder(salt="x"))
    with pytest.raises(IndexerError, match="encode\\(texts\\), dim and identity"):
        UserIndexer(encoder=object())  # type: ignore[arg-type]


def test_an_encoder_that_cannot_be_recreated_still_loads_for_lookup(tmp_path: Path) -> None:
    users = [UserText(user_id=f"u{i}", texts=[TEXTS[i % 8]]) for i in range(24)]
    folder = UserIndexer(IndexerConfig(quantizer=QUANT, fusion="mean"),
                         encoder=HashEncoder()).fit(users).save(tmp_path / "hub")
    # as if it had been built with a hub model that is not available offline here
    index = json.loads((folder / "index.json").read_text())
    index["encoder"].update(kind="sentence-transformers", name="some-org/not-cached-model")
    (folder / "index.json").write_text(json.dumps(index))
    loaded = UserIndexer.load(folder, cache_dir=tmp_path / "cache")
    assert loaded.token("u3").startswith("<a_")
    with pytest.raises(EncoderError) as info:
        loaded.encode([UserText(user_id="new", texts=["lipstick"])])
    message = str(info.value)
    assert "some-org/not-cached-model" in message
    assert "cannot be loaded here" in message
    assert "encoder=" in message
    assert "encode_vectors" in message
    assert "\n" not in message


# ------------------------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize("kind", ["npy", "safetensors"])
def test_cli_builds_from_vectors(tmp_path: Path, kind: str) -> None:
    x = _vectors(60, 8, seed=5)
    ids = [f"user-{i}" for i in range(60)]
    if kind == "npy":
        vectors = tmp_path / "x.npy"
        np.save(vectors, x)
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
    else:
        vectors = tmp_path / "x.safetensors"
        save_file({"embeddings": x}, str(vectors))
        ids_file = tmp_path / "ids.json"
        ids_file.write_text(json.dumps(ids))
    out = tmp_path / "index"
    runner = CliRunner()
    done = runner.invoke(app, ["build", "--vectors", str(vectors), "--ids", str(ids_file), "--out", str(out),
                               "--quantizer", "rqkmeans", "--levels", "2", "--codebook-size", "8"])
    assert done.exit_code == 0, done.output
    assert "wrote" in done.output
    assert load_index(out).encoder.kind == "precomputed"
    looked = runner.invoke(app, ["lookup", str(out), "user-7"])
    assert looked.exit_code == 0, looked.output
    assert looked.output.startswith("user-7\t<a_")


def test_cli_vector_errors_are_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 4), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    runner = CliRunner()
    base = ["build", "--out", str(tmp_path / "o"), "--quantizer", "rqkmeans"]
    cases = [
        ([*base, "--vectors", str(tmp_path / "x.npy"), "--ids", str(tmp_path / "ids.txt")], "3 rows but"),
        ([*base, "--vectors", str(tmp_path / "x.npy")], "go together"),
        ([*base, "--ids", str(tmp_path / "ids.txt")], "give --users"),
        (base, "give --users"),
    ]
    for args, message in cases:
        done = runner.invoke(app, args)
        assert done.exit_code != 0
        assert message in str(done.exception), (args, done.exception)
