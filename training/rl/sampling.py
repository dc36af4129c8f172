"""Sampled completions of a policy: G answers per prompt at a temperature, reproducible from a seed.

`training.rl.policy.generate` is greedy (evaluation); learnability estimates and rubric construction need
the spread of what the policy would write during GRPO, so they sample as the trainer does (temperature,
no top-k/top-p cut). Each prompt's G samples come from one `num_return_sequences` call after seeding
torch with (seed, prompt index), so a rerun with the same inputs writes the same text.
"""

from __future__ import annotations

from collections.abc import Sequence

from training.rl.policy import Chat, Policy, prompt_text


def sample(
    policy: Policy,
    prompts: Sequence[str | Chat],
    samples: int,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[list[tuple[str, int]]]:
    """Per prompt, `samples` `(text, new token count)` completions, in order."""
    import torch

    if samples < 1 or temperature <= 0:
        raise ValueError(f"need samples >= 1 and temperature > 0, got {samples} and {temperature}")
    tokenizer, model = policy.tokenizer, policy.model
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs = []
    for index, prompt in enumerate(prompts):
        encoded = tokenizer(prompt_text(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        encoded = {key: value.to(policy.config.device) for key, value in encoded.items()}
        torch.manual_seed(seed * 1_000_003 + index)
        with torch.no_grad():
            generated = model.generate(
                **encoded,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                num_return_sequences=samples,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = generated[:, encoded["input_ids"].shape[1] :]
        counts = [int((row != pad).sum()) for row in new]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        outputs.append([(text.strip(), count) for text, count in zip(texts, counts, strict=True)])
    return outputs
