#!/usr/bin/python3
"""PyTorch-eager step time of the UniT model of experiments/bench/unit_small.json.

What it measures: one training step per task (forward to the scalar loss, backward,
gradient clipping + AdamW step) of the model that unitrain builds from
experiments/bench/unit_small.json, written the way an ordinary PyTorch user would write
it (torchvision ResNet-18, DETR-style transformer layers around nn.MultiheadAttention,
nn.TransformerEncoder for the text, DETR's matcher and set loss): the eager baseline
for unitrain's C++ bench/step_bench. Batches are random tensors of the benchmark's shapes,
built before timing, so no data loading is measured. Every phase is timed with
time.perf_counter; the forward lap ends after loss.item(), as unitrain's trainer's does.
zero_grad(set_to_none=True) runs before the forward lap and is not timed.

Rounds interleave the tasks: each round runs, for every task, --warmup untimed steps and
then --steps timed ones. The table gives per task the median forward / backward / update /
total milliseconds over all rounds with the total's spread, and the total weighted by
UniT's sampling ratios.

Run (Debian's Python has torch; the pyenv python3 in PATH does not):
    /usr/bin/python3 bench/unit_small_eager.py --threads 1
    /usr/bin/python3 bench/unit_small_eager.py --threads 2 --json /tmp/eager.json
    /usr/bin/python3 bench/unit_small_eager.py --self-test
On a shared machine: flock /tmp/unitrain-build.lock nice /usr/bin/python3 bench/...

Mirrors plugins/encoders/{image,text}, plugins/decoders/unit_decoder, plugins/heads/
{detr,mlp_classifier} and core/src/train/build.cpp (four AdamW groups). The toy suite's
vocabulary is smaller than --vocab's default 1000: --vocab 242 gives unitrain's
12,422,326 parameters (--vocab 244 the current toy suite's 12,422,582).
"""

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import generalized_box_iou
from torchvision.ops.misc import FrozenBatchNorm2d

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:  # scipy is optional; the fallback below is exact
    linear_sum_assignment = None

# UniT's task mix (the "ratio" of each experiments/toy/tasks/*.json).
RATIOS = {"coco": 0.2, "vg": 0.07, "vqa2": 0.26, "snli_ve": 0.12,
          "qnli": 0.1, "mnli_mm": 0.1, "qqp": 0.1, "sst2": 0.05}
DETECTION = {"coco": 9, "vg": 3}  # object classes
CLASSIFICATION = {"vqa2": 14, "snli_ve": 3, "qnli": 2, "mnli_mm": 3, "qqp": 2, "sst2": 2}
VG_ATTRIBUTES = 6
IMAGE_TASKS = ("coco", "vg", "vqa2", "snli_ve")
TEXT_TASKS = ("vqa2", "snli_ve", "qnli", "mnli_mm", "qqp", "sst2")
PAIR_TASKS = ("qnli", "mnli_mm", "qqp")
D = 128          # every width: image/text transformers, decoder, encoder outputs
HEADS = 4
FFN = 256
DROPOUT = 0.1
BATCH = 16
IMAGE_SIZE = 64
TEXT_LENGTH = 48
MAX_POSITION = 64  # experiments/toy/model.json


# ---------------------------------------------------------------------------------
# Hungarian algorithm (used when scipy is missing)

def hungarian(cost):
    """Exact min-cost assignment of a [n, m] cost matrix (nested lists or a tensor).

    Returns (rows, cols) as scipy.optimize.linear_sum_assignment does: min(n, m) pairs,
    sorted by row. Shortest augmenting paths with potentials, O(n^2 m) for n <= m.
    """
    c = cost.tolist() if hasattr(cost, "tolist") else [list(r) for r in cost]
    n = len(c)
    m = len(c[0]) if n else 0
    if n == 0 or m == 0:
        return [], []
    transposed = n > m
    if transposed:  # the algorithm assigns every row, so rows must be the fewer
        c = [list(col) for col in zip(*c)]
        n, m = m, n
    inf = float("inf")
    u = [0.0] * (n + 1)   # row potentials (1-based; 0 is the virtual start)
    v = [0.0] * (m + 1)   # column potentials
    p = [0] * (m + 1)     # p[j]: row assigned to column j (0 = free)
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            row = c[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]]
    if transposed:
        pairs = [(col, row) for row, col in pairs]
    pairs.sort()
    return [r for r, _ in pairs], [k for _, k in pairs]


def assign(cost):
    """linear_sum_assignment of scipy when importable, else hungarian()."""
    if linear_sum_assignment is not None:
        return linear_sum_assignment(cost)
    return hungarian(cost)


# ---------------------------------------------------------------------------------
# Transformer pieces (DETR's transformer.py, post-norm)

def position_embedding_sine(mask, num_pos_feats, temperature=10000.0, scale=2 * math.pi):
    """DETR's PositionEmbeddingSine(normalize=True): mask [B, H, W] -> pos [B, 2F, H, W]."""
    not_mask = ~mask
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    eps = 1e-6
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=mask.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x[:, :, :, None] / dim_t
    pos_y = y[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class EncoderLayer(nn.Module):
    """DETR's TransformerEncoderLayer.forward_post: pos added to q and k only. [S, B, D]."""

    def __init__(self, d, heads, ffn, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
        self.linear1 = nn.Linear(d, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src, key_padding_mask, pos):
        q = k = src + pos
        # NOTE: need_weights=False: DETR leaves it True and drops the averaged weights.
        src2 = self.self_attn(q, k, value=src, key_padding_mask=key_padding_mask,
                              need_weights=False)[0]
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class DecoderLayer(nn.Module):
    """DETR's TransformerDecoderLayer.forward_post. tgt [Q, B, D], memory [S, B, D]."""

    def __init__(self, d, heads, ffn, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
        self.linear1 = nn.Linear(d, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, memory_key_padding_mask, pos, query_pos):
        q = k = tgt + query_pos
        tgt2 = self.self_attn(q, k, value=tgt, need_weights=False)[0]
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        tgt2 = self.multihead_attn(tgt + query_pos, memory + pos, value=memory,
                                   key_padding_mask=memory_key_padding_mask,
                                   need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(tgt2))


def xavier_(module):
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


# ---------------------------------------------------------------------------------
# Encoders and decoder

class ImageEncoder(nn.Module):
    """ResNet-18 to layer4 (frozen BN, all convs trained) + 2 DETR encoder layers.

    image [B, 3, H, W], mask [B, H, W] (True = padding) ->
    (memory [B, hw, D], key mask [B, hw], pos [B, hw, D]).
    """

    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])  # no avgpool, fc
        self.input_proj = nn.Conv2d(512, D, kernel_size=1)
        self.layers = nn.ModuleList(EncoderLayer(D, HEADS, FFN, DROPOUT) for _ in range(2))
        xavier_(self.layers)

    def forward(self, image, mask):
        features = self.backbone(image)  # [B, 512, h, w]
        mask = F.interpolate(mask[None].float(), size=features.shape[-2:])[0].bool()
        pos = position_embedding_sine(mask, D // 2).flatten(2).permute(2, 0, 1)  # [hw, B, D]
        src = self.input_proj(features).flatten(2).permute(2, 0, 1)              # [hw, B, D]
        key_mask = mask.flatten(1)
        memory = src
        for layer in self.layers:
            memory = layer(memory, key_mask, pos)
        # NOTE: unitrain's "residual" (default true): the projected grid is added back.
        # output_dim equals hidden_dim, so unitrain has no output projection either.
        memory = src + memory
        return memory.transpose(0, 1), key_mask, pos.transpose(0, 1)


class TextEncoder(nn.Module):
    """BERT embeddings + nn.TransformerEncoder (post-norm, GELU) + projections.

    input_ids, segment_ids [B, T], mask [B, T] (True = padding) ->
    (memory [B, T, D], mask [B, T], pos [B, T, D]).
    """

    def __init__(self, vocab):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, D)
        self.position_embeddings = nn.Embedding(MAX_POSITION, D)
        self.token_type_embeddings = nn.Embedding(2, D)
        self.layer_norm = nn.LayerNorm(D, eps=1e-12)
        self.dropout = nn.Dropout(DROPOUT)
        layer = nn.TransformerEncoderLayer(D, HEADS, FFN, DROPOUT, activation="gelu",
                                           layer_norm_eps=1e-12, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        for module in (self.word_embeddings, self.position_embeddings,
                       self.token_type_embeddings, self.encoder):  # BERT's init
            for name, p in module.named_parameters():
                if p.dim() > 1:
                    nn.init.normal_(p, std=0.02)
                elif "norm" not in name:
                    nn.init.zeros_(p)
        self.projection = nn.Linear(D, D)
        self.pos_projection = nn.Linear(D, D)

    def forward(self, input_ids, segment_ids, mask):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
             + self.token_type_embeddings(segment_ids))
        x = self.encoder(self.dropout(self.layer_norm(x)), src_key_padding_mask=mask)
        pos = self.pos_projection(self.position_embeddings(positions))  # [T, D] as MMF
        return self.projection(x), mask, pos[None].expand(input_ids.shape[0], -1, -1)


class Decoder(nn.Module):
    """UniT's shared decoder: per-task query embeddings, zero tgt, DETR decoder layers,
    final LayerNorm on every layer's output. memory [B, S, D] -> [L, B, Q, D]."""

    def __init__(self, queries):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(D, HEADS, FFN, DROPOUT) for _ in range(2))
        self.norm = nn.LayerNorm(D)
        xavier_(self.layers)
        self.queries = nn.ModuleDict({t: nn.Embedding(q, D) for t, q in queries.items()})

    def forward(self, task, memory, mask, pos):
        batch = memory.shape[0]
        query_pos = self.queries[task].weight[:, None].expand(-1, batch, -1)  # [Q, B, D]
        tgt = torch.zeros_like(query_pos)
        memory, pos = memory.transpose(0, 1), pos.transpose(0, 1)  # [S, B, D]
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, mask, pos, query_pos)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs).transpose(1, 2)


# ---------------------------------------------------------------------------------
# Heads

class DetrHead(nn.Module):
    """DETR's class Linear + 3-layer box MLP on every layer, Hungarian matching and the set
    loss with aux losses; the attribute MLP of plugins/heads/detr (vg).

    run(decoder_out [L, B, Q, D], targets) -> scalar loss; targets: dicts of "labels" [N],
    "boxes" [N, 4] cxcywh and (vg) "attributes" [N, slots] (-1 padded).
    """

    def __init__(self, num_classes, num_attributes=0):
        super().__init__()
        self.num_classes = num_classes
        self.class_embed = nn.Linear(D, num_classes + 1)
        self.bbox_embed = nn.ModuleList([nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, 4)])
        self.num_attributes = num_attributes
        if num_attributes:
            self.attribute_class_embed = nn.Embedding(num_classes + 1, 32)
            self.attribute_fc1 = nn.Linear(D + 32, 64)
            self.attribute_fc2 = nn.Linear(64, num_attributes)
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = 0.1  # eos_coef
        self.register_buffer("empty_weight", empty_weight)

    def attribute_logits(self, hidden, classes):
        x = torch.cat([hidden, self.attribute_class_embed(classes)], -1)
        return self.attribute_fc2(F.relu(self.attribute_fc1(x)))

    def run(self, decoder_out, targets):
        logits = self.class_embed(decoder_out)
        x = decoder_out
        for i, linear in enumerate(self.bbox_embed):
            x = linear(x) if i == len(self.bbox_embed) - 1 else F.relu(linear(x))
        boxes = x.sigmoid()
        if self.num_attributes:  # unitrain's head outputs these on every forward
            self.attribute_logits(decoder_out[-1], logits[-1, ..., :-1].argmax(-1))
        num_boxes = max(1.0, float(sum(len(t["labels"]) for t in targets)))
        loss = 0
        for layer in range(decoder_out.shape[0]):
            last = layer == decoder_out.shape[0] - 1
            loss = loss + self.layer_loss(logits[layer], boxes[layer], decoder_out[layer],
                                          targets, num_boxes, last and self.num_attributes)
        return loss

    @torch.no_grad()
    def match(self, logits, boxes, targets):
        """DETR's HungarianMatcher: cost -p(class) + 5 L1 + 2 (-GIoU), per image."""
        b, q = logits.shape[:2]
        prob = logits.flatten(0, 1).softmax(-1)
        out_boxes = boxes.flatten(0, 1)
        tgt_ids = torch.cat([t["labels"] for t in targets])
        tgt_boxes = torch.cat([t["boxes"] for t in targets])
        cost = (5 * torch.cdist(out_boxes, tgt_boxes, p=1) - prob[:, tgt_ids]
                - 2 * generalized_box_iou(cxcywh_to_xyxy(out_boxes), cxcywh_to_xyxy(tgt_boxes)))
        cost = cost.view(b, q, -1).cpu()
        sizes = [len(t["boxes"]) for t in targets]
        return [assign(c[i]) for i, c in enumerate(cost.split(sizes, -1))]

    def layer_loss(self, logits, boxes, hidden, targets, num_boxes, with_attributes):
        indices = self.match(logits, boxes, targets)
        batch_idx = torch.cat([torch.full((len(src),), i, dtype=torch.long)
                               for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([torch.as_tensor(src, dtype=torch.long) for src, _ in indices])
        tgt_idx = [torch.as_tensor(tgt, dtype=torch.long) for _, tgt in indices]
        matched_classes = torch.cat([t["labels"][j] for t, j in zip(targets, tgt_idx)])
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long)
        target_classes[batch_idx, src_idx] = matched_classes
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)

        src_boxes = boxes[batch_idx, src_idx]
        tgt_boxes = torch.cat([t["boxes"][j] for t, j in zip(targets, tgt_idx)])
        loss_bbox = F.l1_loss(src_boxes, tgt_boxes, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(cxcywh_to_xyxy(src_boxes), cxcywh_to_xyxy(tgt_boxes)))
        loss_giou = (1 - giou).sum() / num_boxes
        loss = loss_ce + 5 * loss_bbox + 2 * loss_giou
        if with_attributes:
            # As detr_loss.cpp: multi-label BCE over the matched boxes' attribute ids,
            # conditioned on the target class, averaged over boxes with any attribute.
            ids = torch.cat([t["attributes"][j] for t, j in zip(targets, tgt_idx)])
            valid = ids >= 0
            multi_hot = torch.zeros(len(ids), self.num_attributes + 1)
            multi_hot.scatter_(1, torch.where(valid, ids, self.num_attributes), 1.0)
            attr = self.attribute_logits(hidden[batch_idx, src_idx], matched_classes)
            per_box = F.binary_cross_entropy_with_logits(
                attr, multi_hot[:, :-1], reduction="none").mean(-1)
            has_any = valid.any(-1).float()
            loss = loss + (per_box * has_any).sum() / has_any.sum().clamp(min=1.0)
        return loss


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


class MlpClassifier(nn.Module):
    """plugins/heads/mlp_classifier: dropout -> Linear -> GELU -> LayerNorm -> Linear on
    query 0 of the last layer. run(decoder_out [L, B, Q, D], batch) -> scalar loss."""

    def __init__(self, num_labels, soft_bce):
        super().__init__()
        self.dropout = nn.Dropout(DROPOUT)
        self.fc1 = nn.Linear(D, D)
        self.norm = nn.LayerNorm(D, eps=1e-12)
        self.fc2 = nn.Linear(D, num_labels)
        self.soft_bce = soft_bce

    def run(self, decoder_out, batch):
        logits = self.fc2(self.norm(F.gelu(self.fc1(self.dropout(decoder_out[-1, :, 0])))))
        if self.soft_bce:  # MMF's logit_bce: mean over B*C entries, times C
            return (F.binary_cross_entropy_with_logits(logits, batch["soft_labels"])
                    * logits.shape[1])
        return F.cross_entropy(logits, batch["labels"])


# ---------------------------------------------------------------------------------
# The model

class UnitModel(nn.Module):
    """forward(task, batch) -> scalar training loss of one task's batch."""

    def __init__(self, tasks, vocab):
        super().__init__()
        self.image = ImageEncoder()
        self.text = TextEncoder(vocab)
        self.decoder = Decoder({t: 10 if t in DETECTION else 4 for t in tasks})
        heads = {}
        for t in tasks:
            if t in DETECTION:
                heads[t] = DetrHead(DETECTION[t], VG_ATTRIBUTES if t == "vg" else 0)
            else:
                heads[t] = MlpClassifier(CLASSIFICATION[t], soft_bce=t == "vqa2")
        self.heads = nn.ModuleDict(heads)

    def forward(self, task, batch):
        parts = []
        if task in IMAGE_TASKS:
            parts.append(self.image(batch["image"], batch["image_mask"]))
        if task in TEXT_TASKS:
            parts.append(self.text(batch["input_ids"], batch["segment_ids"], batch["text_mask"]))
        memory, mask, pos = (torch.cat(x, 1) for x in zip(*parts))
        decoded = self.decoder(task, memory, mask, pos)
        head = self.heads[task]
        return head.run(decoded, batch["targets"] if task in DETECTION else batch)


def make_optimizer(model):
    """AdamW over build.cpp's four groups: {backbone, rest} x {>1-D: decay, 1-D: none}."""
    groups = {(b, d): [] for b in (False, True) for d in (True, False)}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[("backbone." in name, p.dim() > 1)].append(p)
    param_groups = [{"params": ps, "lr": 1e-5 if backbone else 1e-4,
                     "weight_decay": 1e-4 if decay else 0.0}
                    for (backbone, decay), ps in groups.items() if ps]
    return torch.optim.AdamW(param_groups)


# ---------------------------------------------------------------------------------
# Batches

def make_batch(task, vocab, gen):
    """A random batch of the benchmark's shapes for `task`."""
    batch = {}
    if task in IMAGE_TASKS:
        batch["image"] = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
        batch["image_mask"] = torch.zeros(BATCH, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    if task in TEXT_TASKS:
        low, high = (16, 24) if task in IMAGE_TASKS else (TEXT_LENGTH // 2, TEXT_LENGTH)
        lengths = torch.randint(low, high + 1, (BATCH,), generator=gen)
        lengths[0] = high  # collate pads to the longest
        positions = torch.arange(high)[None]
        batch["input_ids"] = torch.randint(5, vocab, (BATCH, high), generator=gen)
        batch["text_mask"] = positions >= lengths[:, None]
        batch["input_ids"][batch["text_mask"]] = 0
        if task in PAIR_TASKS:  # second sentence from a random split point on
            split = (lengths * torch.rand(BATCH, generator=gen) * 0.5 + lengths * 0.25).long()
            segments = (positions >= split[:, None]) & ~batch["text_mask"]
            batch["segment_ids"] = segments.long()
        else:
            batch["segment_ids"] = torch.zeros(BATCH, high, dtype=torch.long)
    if task in DETECTION:
        targets = []
        for _ in range(BATCH):
            n = int(torch.randint(1, 5, (1,), generator=gen))
            wh = 0.1 + 0.4 * torch.rand(n, 2, generator=gen)
            centre = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=gen)
            target = {"labels": torch.randint(0, DETECTION[task], (n,), generator=gen),
                      "boxes": torch.cat([centre, wh], 1)}
            if task == "vg":
                ids = torch.randint(-1, VG_ATTRIBUTES, (n, 3), generator=gen)
                target["attributes"] = ids
            targets.append(target)
        batch["targets"] = targets
    elif task == "vqa2":
        batch["soft_labels"] = (torch.rand(BATCH, CLASSIFICATION[task], generator=gen)
                                .mul(3).floor().div(3))
    else:
        batch["labels"] = torch.randint(0, CLASSIFICATION[task], (BATCH,), generator=gen)
    return batch


# ---------------------------------------------------------------------------------
# Timing

def step(model, optimizer, params, task, batch):
    """One training step; returns (forward, backward, update) seconds."""
    optimizer.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss = model(task, batch)
    value = loss.item()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(params, 0.1)
    optimizer.step()
    t3 = time.perf_counter()
    if not math.isfinite(value):
        raise RuntimeError(f"task {task}: loss is {value}")
    return t1 - t0, t2 - t1, t3 - t2


def quartiles(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def benchmark(args, tasks):
    torch.manual_seed(0)
    model = UnitModel(tasks, args.vocab)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model)
    total = sum(p.numel() for p in model.parameters())
    print(f"parameters: {total:,} (unitrain's unit_small: 12,422,326 at vocab 242; "
          f"vocab here {args.vocab})")
    for name in ("image", "text", "decoder", "heads"):
        print(f"  {name:<8} {sum(p.numel() for p in getattr(model, name).parameters()):>12,}")

    gen = torch.Generator().manual_seed(1)
    batches = {t: [make_batch(t, args.vocab, gen) for _ in range(args.batches)] for t in tasks}
    times = {t: {"forward": [], "backward": [], "update": [], "total": []} for t in tasks}
    counter = {t: 0 for t in tasks}
    for _ in range(args.rounds):
        for t in tasks:
            for i in range(args.warmup + args.steps):
                batch = batches[t][counter[t] % args.batches]
                counter[t] += 1
                f, b, u = step(model, optimizer, params, t, batch)
                if i >= args.warmup:
                    for key, value in zip(("forward", "backward", "update", "total"),
                                          (f, b, u, f + b + u)):
                        times[t][key].append(1e3 * value)
    return total, times


def report(args, tasks, total, times):
    header = (f"{'task':<8} {'n':>4} {'forward':>8} {'backward':>9} {'update':>7} "
              f"{'total':>7} {'IQR':>15} {'min-max':>15}")
    print(f"\nPyTorch eager {torch.__version__}, threads {args.threads}, batch {BATCH}, "
          f"{args.rounds} rounds x {args.steps} steps (+{args.warmup} warm-up); ms, medians")
    print(header)
    results = {}
    for t in tasks:
        row = {k: statistics.median(v) for k, v in times[t].items()}
        low, high = quartiles(times[t]["total"])
        row.update(total_p25=low, total_p75=high, total_min=min(times[t]["total"]),
                   total_max=max(times[t]["total"]), n=len(times[t]["total"]))
        results[t] = row
        print(f"{t:<8} {row['n']:>4} {row['forward']:>8.1f} {row['backward']:>9.1f} "
              f"{row['update']:>7.1f} {row['total']:>7.1f} {low:>7.1f}-{high:<7.1f} "
              f"{row['total_min']:>7.1f}-{row['total_max']:<7.1f}")
    weight = sum(RATIOS[t] for t in tasks)
    weighted = {k: sum(RATIOS[t] * results[t][k] for t in tasks) / weight
                for k in ("forward", "backward", "update", "total")}
    print(f"{'weighted':<8} {'':>4} {weighted['forward']:>8.1f} {weighted['backward']:>9.1f} "
          f"{weighted['update']:>7.1f} {weighted['total']:>7.1f}   (UniT ratios"
          f"{'' if abs(weight - 1) < 1e-9 else f', renormalized over {weight:.2f}'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "batch": BATCH,
                       "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
                       "vocab": args.vocab, "parameters": total,
                       "matcher": "scipy" if linear_sum_assignment else "hungarian",
                       "tasks": results, "weighted_ms": weighted,
                       "samples_ms": times}, f, indent=1)
        print(f"wrote {args.json}")


# ---------------------------------------------------------------------------------
# Self-test

def self_test(args):
    rng = random.Random(0)
    checked = 0
    for n, m in itertools.product(range(1, 7), repeat=2):
        for trial in range(8):
            integer = trial % 2 == 0  # ties
            c = [[rng.randint(0, 4) if integer else rng.uniform(-3, 3) for _ in range(m)]
                 for _ in range(n)]
            rows, cols = hungarian(c)
            got = sum(c[r][k] for r, k in zip(rows, cols))
            k = min(n, m)
            if n <= m:
                best = min(sum(c[i][p[i]] for i in range(n))
                           for p in itertools.permutations(range(m), k))
            else:
                best = min(sum(c[p[j]][j] for j in range(m))
                           for p in itertools.permutations(range(n), k))
            assert len(rows) == k and len(set(rows)) == k and len(set(cols)) == k, (n, m)
            assert rows == sorted(rows), rows
            assert abs(got - best) < 1e-9, (n, m, c, got, best)
            checked += 1
    print(f"hungarian: {checked} random matrices up to 6x6 match brute force")
    if linear_sum_assignment is not None:
        for _ in range(100):
            c = torch.rand(10, rng.randint(1, 4))
            r1, c1 = linear_sum_assignment(c)
            r2, c2 = hungarian(c)
            assert abs(float(c[r1, c1].sum()) - float(c[r2, c2].sum())) < 1e-6
        print("hungarian: agrees with scipy")
    # One step of every task: finite losses, every used parameter gets a gradient.
    tasks = args.tasks
    torch.manual_seed(0)
    model = UnitModel(tasks, args.vocab)
    gen = torch.Generator().manual_seed(1)
    for t in tasks:
        model.zero_grad(set_to_none=True)
        loss = model(t, make_batch(t, args.vocab, gen))
        assert loss.dim() == 0 and math.isfinite(loss.item()), (t, loss)
        loss.backward()
        head = model.heads[t]
        missing = [n for n, p in head.named_parameters() if p.grad is None]
        assert not missing, (t, missing)
        assert model.decoder.queries[t].weight.grad is not None, t
        print(f"{t:<8} loss {loss.item():8.4f}  ok")
    print("self-test passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per task and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all tasks")
    parser.add_argument("--batches", type=int, default=4, help="pre-built batches per task")
    parser.add_argument("--tasks", default=",".join(RATIOS), help="comma list of tasks")
    parser.add_argument("--vocab", type=int, default=1000, help="text vocabulary size")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--self-test", action="store_true",
                        help="check the Hungarian fallback and one step per task, then exit")
    args = parser.parse_args()
    args.tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in args.tasks if t not in RATIOS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; valid: {', '.join(RATIOS)}")
    if args.steps < 1 or args.rounds < 1 or args.batches < 1 or args.warmup < 0:
        parser.error("--steps, --rounds and --batches must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    if args.self_test:
        self_test(args)
        return
    total, times = benchmark(args, args.tasks)
    report(args, args.tasks, total, times)


if __name__ == "__main__":
    sys.exit(main())
