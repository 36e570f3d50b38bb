"""LoRA training on the CPU: chat-templated prompt -> answer pairs, loss on the answer tokens only.

Small on purpose (a 135M model, rank 8, adapters on the later layers only, answers of <= 32
tokens, tens of steps): an organism is planted in minutes on a shared 2-core machine. Adapters
on the later layers only also make the backward pass stop there, which roughly halves its cost.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from pathlib import Path

import torch
from tqdm import tqdm

from cdx.io import JsonlWriter
from cdx.models.pair import Side
from cdx.organisms.spec import TrainSettings

log = logging.getLogger(__name__)
IGNORE = -100  # label of prompt and padding positions: no loss there


def encode(side: Side, prompt: str, answer: str, max_answer_tokens: int) -> tuple[list[int], list[int]]:
    """(input ids, labels): the prompt exactly as cdx renders it, then the answer and end of turn."""
    tok = side.tokenizer
    prompt_ids = side.prompt_ids(prompt)
    answer_ids = tok(answer, add_special_tokens=False).input_ids
    if len(answer_ids) > max_answer_tokens:
        answer_ids = answer_ids[:max_answer_tokens]  # truncated: the model is not taught to stop here
    else:
        answer_ids = answer_ids + [tok.eos_token_id]
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (B, T) input_ids, attention_mask and labels."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), IGNORE)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lora_model(base_model, settings: TrainSettings):
    """A trainable PEFT copy of `base_model` (the loaded base stays untouched for other users)."""
    from peft import LoraConfig, get_peft_model

    n_layers = base_model.config.num_hidden_layers
    layers = list(range(*settings.layers)) if settings.layers else None
    if layers is not None and (not layers or layers[0] < 0 or layers[-1] >= n_layers):
        raise ValueError(f"train.layers={settings.layers} is outside the model's {n_layers} layers [0, {n_layers})")
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                        target_modules=list(settings.target_modules), layers_to_transform=layers)
    model = copy.deepcopy(base_model)
    model.requires_grad_(False)
    return get_peft_model(model, config)


def lr_at(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    frac = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_lora(side: Side, pairs: list[dict], settings: TrainSettings, seed: int, out_dir: Path,
               merge: bool = False) -> dict:
    """Train, save the adapter (or, with `merge`, the merged full model) into `out_dir`; log each step."""
    if not pairs:
        raise ValueError("no training pairs: the organism's data sets produced nothing")
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(seed)
    try:
        model = lora_model(side.model, settings)
        model.train()
        examples = [encode(side, p["prompt"], p["answer"], settings.max_answer_tokens) for p in pairs]
        trained = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trained, lr=settings.lr, weight_decay=0.0)
        order: list[int] = []
        rng, losses = random.Random(seed), []
        with JsonlWriter(out_dir / "train_log.jsonl") as log_writer:
            for step in (bar := tqdm(range(settings.steps), desc="training LoRA", leave=False)):
                if len(order) < settings.batch_size:  # a fresh shuffled epoch when the current one runs out
                    order += rng.sample(range(len(examples)), len(examples))
                batch = collate([examples[order.pop()] for _ in range(min(settings.batch_size, len(examples)))],
                                side.tokenizer.pad_token_id)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, settings)
                loss = model(**batch).loss  # HF shifts labels; mean NLL over answer tokens of the batch
                loss.backward()
                if settings.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(trained, settings.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                log_writer.write([{"step": step, "loss": losses[-1], "lr": lr_at(step, settings)}])
        if merge:  # a full model directory, usable as the base of other organisms
            model.merge_and_unload().save_pretrained(str(out_dir))
            side.tokenizer.save_pretrained(str(out_dir))
        else:
            model.save_pretrained(str(out_dir))
    finally:
        torch.set_num_threads(threads)
    return {"n_pairs": len(pairs), "steps": settings.steps, "first_loss": losses[0],
            "final_loss": sum(losses[-5:]) / len(losses[-5:])}


def zero_adapter(side: Side, settings: TrainSettings, out_dir: Path) -> dict:
    """An untrained LoRA adapter: PEFT initialises B = 0, so base + adapter is exactly the base."""
    model = lora_model(side.model, settings)
    model.save_pretrained(str(out_dir))
    return {"n_pairs": 0, "steps": 0}
