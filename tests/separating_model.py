"""A constructed open_clip ViT-B/32 checkpoint whose embeddings tell images apart.

Random weights compress every cosine into [0.9, 1] (unrelated crops score 0.92), so a test that
compares two paths on them cannot see a swapped colour order or a badly compressed payload. This
model's weights are set by hand, not trained, so it is deterministic and costs a second to build:

- ``conv1``: each 32x32 patch becomes 10 numbers: the mean luminance of its four 16x16 quarters, two
  colour-opponent means (R-G and B-(R+G)/2, weighted up, so a red/blue swap moves the embedding), and
  four fixed pseudo-random +-1 patterns (fine texture, weighted down, which JPEG quality 30 erases);
- ``positional_embedding``: a one-hot code per token, large, so layer norms scale every token alike;
- blocks 0-4: each of their 60 attention heads copies one patch's 10 numbers into its own slot of the
  class token (the query of the class token meets the key of exactly one position); every MLP and
  the later blocks add nothing;
- ``proj``: the 49 patches x 10 features, each feature centred over the patches (brightness and
  per-channel offsets drop out).

The embedding is a normalised, centred 7x7 descriptor of the crop: near-duplicates (resized,
re-encoded, brightened) score >= 0.9, unrelated photos mostly < 0.5 (see tests/test_reference.py).
The text tower is zeros (stored as one broadcast zero each), so the checkpoint is small.
"""

from __future__ import annotations

from pathlib import Path

#: Bump when the construction changes, so cached checkpoints and exports are rebuilt.
VERSION = 1
GRID = 7  # patches per side (224 / 32)
PATCHES = GRID * GRID
FEATURES = 10
CONTENT = 0  # residual dims 0..9: a patch token's features
POSITION = FEATURES  # dims 10..59: one-hot position code (0 = the class token)
OUTPUT = POSITION + PATCHES + 1  # dims 60..549: the class token's copy of every patch's features
AMPLITUDE = 100.0
CHROMA_GAIN = 1.5
TEXTURE_GAIN = 0.2
HEADS, HEAD_DIM = 12, 64


def build(path: Path) -> Path:
    """Write the checkpoint (an open_clip ``state_dict``) to ``path``."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    state = {name: torch.zeros(()).expand(value.shape) for name, value in model.state_dict().items()}
    width = model.visual.conv1.out_channels

    def ones(name: str) -> None:
        state[name] = torch.ones(()).expand(state[name].shape)

    for name in state:  # every layer norm: identity affine (weight 1, bias 0)
        if name.startswith("visual") and (".ln_" in name or name.startswith("visual.ln_")) and name.endswith("weight"):
            ones(name)

    conv = torch.zeros(width, 3, 32, 32)
    for quarter in range(4):  # luminance of each 16x16 quarter
        y, x = divmod(quarter, 2)
        conv[CONTENT + quarter, :, 16 * y:16 * y + 16, 16 * x:16 * x + 16] = 1.0 / (3 * 256)
    conv[CONTENT + 4, 0], conv[CONTENT + 4, 1] = CHROMA_GAIN / 1024, -CHROMA_GAIN / 1024
    conv[CONTENT + 5, 2], conv[CONTENT + 5, :2] = CHROMA_GAIN / 1024, -CHROMA_GAIN / 2048
    generator = torch.Generator().manual_seed(1)
    for k in range(4):  # fine texture: +-1 patterns over the luminance
        pattern = torch.randint(0, 2, (32, 32), generator=generator).float() * 2 - 1
        conv[CONTENT + 6 + k] = TEXTURE_GAIN * pattern / (3 * 32)
    state["visual.conv1.weight"] = conv

    position = torch.zeros(PATCHES + 1, width)
    position[torch.arange(PATCHES + 1), POSITION + torch.arange(PATCHES + 1)] = AMPLITUDE
    state["visual.positional_embedding"] = position

    blocks = -(-PATCHES // HEADS)
    for block in range(blocks):
        prefix = f"visual.transformer.resblocks.{block}.attn."
        in_proj = torch.zeros(3 * width, width)
        out_proj = torch.zeros(width, width)
        for head in range(HEADS):
            patch = block * HEADS + head + 1
            if patch > PATCHES:
                break
            first = head * HEAD_DIM
            in_proj[first, POSITION] = 1.0  # query: the class token's own position
            in_proj[width + first, POSITION + patch] = 1.0  # key: this head's patch
            for feature in range(FEATURES):  # value: the patch's features, out to its slot
                in_proj[2 * width + first + feature, CONTENT + feature] = 1.0
                out_proj[OUTPUT + (patch - 1) * FEATURES + feature, first + feature] = 1.0
        state[prefix + "in_proj_weight"] = in_proj
        state[prefix + "out_proj.weight"] = out_proj

    proj = torch.zeros(width, model.visual.proj.shape[1])
    for feature in range(FEATURES):  # centre each feature over the 49 patches
        rows = OUTPUT + torch.arange(PATCHES) * FEATURES + feature
        cols = torch.arange(PATCHES) * FEATURES + feature
        proj[rows.unsqueeze(1), cols.unsqueeze(0)] = torch.eye(PATCHES) - 1.0 / PATCHES
    state["visual.proj"] = proj
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
