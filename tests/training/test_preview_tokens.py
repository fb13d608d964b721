"""The Data step's "as training sees it" is the trainer's input: the token ids, and which of them carry
the loss, that workers.training.data.trainer_tokens shows (read in the web process without transformers)
are the ones the SFT trainer Atelier builds (techniques/sft.py, automatic settings, TRL's own tokenizing
and collator) puts in its batch, for chats and for prompt/completion rows, plain text or chat turns; and
for a preference pair, the DPO trainer's prompt and chosen answer."""

from __future__ import annotations

from typing import Any

import pytest

from workers.training import data


def _trainer(tiny_model, tmp_path, rows, technique_name="sft"):
    from workers.training.models import load_model, load_tokenizer
    from workers.training.spec import JobSpec
    from workers.training.techniques import REGISTRY, make_params
    from workers.training.train import Context, plan_hparams

    model_ref = str(tiny_model / "partial")
    spec = JobSpec.from_dict({"technique": technique_name, "model": model_ref, "dataset": "unused.jsonl",
                              "output_dir": str(tmp_path), "tracking": {"enabled": False}})  # fmt: skip
    tokenizer = load_tokenizer(spec.model)
    train_rows = data.for_model(rows, tokenizer)
    model = load_model(spec.model, method="lora")
    hparams, _ = plan_hparams(spec, tokenizer, train_rows, model.num_parameters(), model.config, False)
    technique = REGISTRY[technique_name]
    ctx = Context(spec=spec, params=make_params(technique, {}), hparams=hparams, model=model,
                  tokenizer=tokenizer, train_rows=train_rows)  # fmt: skip
    return technique.build(ctx)


ROWS: dict[str, list[dict[str, Any]]] = {
    "prompt/completion": [
        {"prompt": "reverse: c a t", "completion": "t a c"},
        {"prompt": "add: 12 + 7", "completion": "19"},
    ],
    "chat prompt/completion": [
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "reverse: d o g"}],
         "completion": [{"role": "assistant", "content": "g o d"}]},
    ],
    "messages": [
        {"messages": [{"role": "user", "content": "reverse: s u n"}, {"role": "assistant", "content": "n u s"},
                      {"role": "user", "content": "and m o o n?"}, {"role": "assistant", "content": "n o o m"}]},
    ],
}  # fmt: skip


@pytest.mark.parametrize("kind", list(ROWS))
def test_the_preview_shows_the_ids_and_the_learned_tokens_of_the_trainers_batch(kind, tiny_model, tmp_path):
    from workers.training.model_files import ChatTokenizer

    rows = ROWS[kind]
    trainer = _trainer(tiny_model, tmp_path, rows)
    ours = ChatTokenizer(tiny_model / "partial")
    for i, row in enumerate(rows):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        ids = batch["input_ids"][0].tolist()
        learned = [int(label != -100) for label in batch["labels"][0].tolist()]
        shown = data.trainer_tokens(ours, row)
        assert shown["ids"] == ids
        assert shown["loss"] == learned and 0 < sum(learned) < len(ids)
        assert "".join(text for text, _ in shown["spans"]) == shown["text"]
        answer = row.get("completion") or row["messages"][-1]["content"]
        answer = answer[-1]["content"] if isinstance(answer, list) else answer
        assert any(learned and answer in text for text, learned in shown["spans"])


def test_the_preview_of_a_preference_pair_is_the_dpo_trainers_prompt_and_chosen_answer(tiny_model, tmp_path):
    from workers.training.model_files import ChatTokenizer

    rows = [{"prompt": "reverse: c a t", "chosen": "t a c", "rejected": "c a t"},
            {"prompt": "reverse: d o g", "chosen": "g o d", "rejected": "g o"}]  # fmt: skip
    trainer = _trainer(tiny_model, tmp_path, rows, "dpo")
    ours = ChatTokenizer(tiny_model / "partial")
    for i, row in enumerate(rows):
        example = trainer.train_dataset[i]
        shown = data.trainer_tokens(ours, row)
        assert shown["ids"] == example["prompt_ids"] + example["chosen_ids"]
        assert shown["loss"] == [0] * len(example["prompt_ids"]) + [1] * len(example["chosen_ids"])


def test_the_preview_of_a_marked_answer_is_the_kto_trainers_batch(tiny_model, tmp_path):
    from workers.training.model_files import ChatTokenizer

    rows = [{"prompt": "reverse: c a t", "completion": "t a c", "label": True},
            {"prompt": "reverse: d o g", "completion": "g o", "label": False}]  # fmt: skip
    trainer = _trainer(tiny_model, tmp_path, rows, "kto")
    ours = ChatTokenizer(tiny_model / "partial")
    seen = set()
    for example in trainer.train_dataset:  # shuffled by the trainer: matched by prompt
        row = next(r for r in rows if r["prompt"] == example["prompt"][-1]["content"])
        batch = trainer.data_collator([example])
        shown = data.trainer_tokens(ours, row)
        assert shown["ids"] == batch["input_ids"][0].tolist()
        assert shown["loss"] == batch["completion_mask"][0].tolist() and sum(shown["loss"]) > 0
        seen.add(row["label"])
    assert seen == {True, False}


def test_the_preview_of_a_prompt_alone_is_what_grpo_asks_the_model(tiny_model, tmp_path):
    """RLVR's GRPO trainer (RLAIF's is the same trainer with a judge for its reward)."""
    from workers.training.model_files import ChatTokenizer

    rows: list[dict[str, Any]] = [{"prompt": "reverse: c a t", "answer": "t a c"},
            {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "add: 2 + 2"}],
             "answer": "4"}]  # fmt: skip
    trainer = _trainer(tiny_model, tmp_path, rows, "rlvr")
    ours = ChatTokenizer(tiny_model / "partial")
    for example, row in zip(trainer.train_dataset, rows, strict=True):
        asked = trainer._tokenize_prompts([example["prompt"]])[0][0]  # GRPO's own tokenizing of a prompt
        shown = data.trainer_tokens(ours, row)
        assert shown["ids"] == list(asked) and not any(shown["loss"])
        assert shown["text"].endswith("assistant\n")  # up to where the model starts its answer
