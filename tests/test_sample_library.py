"""The sample library's originals (photodedup.sample_library): different pictures at any size, so its truth holds."""

from __future__ import annotations

import numpy as np

from photodedup import hashing
from photodedup.grouping import DEFAULT_DIHEDRAL_THRESHOLD, DEFAULT_HASH_THRESHOLD
from photodedup.sample_library import SCENE_CODES, first_scene, original_photo, scene_bits, source_photos


def _bits(hashes: np.ndarray) -> np.ndarray:
    """``uint64 [n, 8]`` -> ``bool [n, 8, 64]``."""
    n = hashes.shape[0]
    return np.unpackbits(hashes.astype(">u8").view(np.uint8).reshape(n, 8, 8), axis=2).astype(bool)


def test_no_two_originals_of_a_400_original_library_are_perceptually_near():
    # `sample-library --originals 400` reused the same quarters past about 157 originals: 318 pairs of its
    # "distinct" originals were within the grouping threshold, and `eval` scored 0.32 against its own truth.
    # The originals as make_library draws them (its rng per index), hashed at 128 px (the hash reads 32 x 32)
    sources = [str(p) for p in source_photos()]
    hashes = []
    for index in range(400):
        photo = original_photo(sources, index, np.random.default_rng([0, index]))
        photo.thumbnail((128, 128))
        hashes.append(hashing.dihedral_phashes(photo))
    bits = _bits(np.array(hashes))
    plain = (bits[:, None, 0, :] != bits[None, :, 0, :]).sum(axis=-1)
    turned = (bits[:, None, :1, :] != bits[None, :, 1:, :]).sum(axis=-1).min(axis=-1)  # mirrored or turned
    np.fill_diagonal(plain, 64)
    np.fill_diagonal(turned, 64)
    near = [(int(i), int(j)) for i, j in np.argwhere(plain <= DEFAULT_HASH_THRESHOLD) if i < j]
    assert near == []
    assert turned.min() > DEFAULT_DIHEDRAL_THRESHOLD


def test_scenes_spell_hashes_at_least_22_bits_apart():
    # a linear code: the distance between two words is the weight of a third, so the least weight bounds them all
    words = np.array([scene_bits(n, np.random.default_rng(n)) for n in range(SCENE_CODES)])
    assert set(words.sum(axis=1)) == {32}  # balanced: the hash's median splits them exactly
    assert (words[1:] != words[0]).sum(axis=1).min() == 22
    # and a scene carries its word: the hash of the picture is the word, up to a bit or two of resampling
    sources = [str(p) for p in source_photos()]
    first = first_scene(sources)  # past the photos and their quarters
    for index in range(first, first + 5):
        rng = np.random.default_rng([0, index])
        photo = original_photo(sources, index, rng)
        got = _bits(hashing.dihedral_phashes(photo)[None])[0, 0]
        assert (got != scene_bits(index - first, rng)).sum() <= 4
