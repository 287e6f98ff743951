"""kvpress's presses on given prompts, greedy: run in kvpress's own
environment (kvpress 0.5.5 pins transformers < 5.3), by bench_kv.py's
``kvpress`` part, which compares the tokens with ragkernels' policies.

    <kvpress python> _kvpress_run.py prompts.json model_dir out.json

prompts.json: {"prompts": [[token ids], ...], "new_tokens": 64}; out.json:
{name: [[generated ids], ...]} for full precision and each press. Decoding
passes explicit position ids (the compressed cache is shorter than the
sequence), as kvpress's own pipeline does.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from kvpress import KnormPress, SnapKVPress, StreamingLLMPress


def greedy(model, ids, press, new_tokens):
    cache = DynamicCache()
    with torch.no_grad():
        if press is None:
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        else:
            with press(model):
                out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        tokens = [int(out.logits[0, -1].argmax())]
        for step in range(new_tokens - 1):
            position = torch.tensor([[ids.shape[1] + step]])
            out = model(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=cache, position_ids=position,
                        use_cache=True)
            tokens.append(int(out.logits[0, -1].argmax()))
    return tokens


def main():
    prompts_path, model_dir, out_path = sys.argv[1:4]
    spec = json.load(open(prompts_path))
    torch.set_num_threads(int(spec.get("threads", 2)))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.set_attn_implementation("sdpa")
    presses = {"full precision": None}
    for share, ratio in (("50%", 0.5), ("25%", 0.75)):
        presses[f"SnapKV {share}"] = SnapKVPress(compression_ratio=ratio, window_size=32, kernel_size=5)
        presses[f"StreamingLLM {share}"] = StreamingLLMPress(compression_ratio=ratio, n_sink=4)
        presses[f"Knorm {share}"] = KnormPress(compression_ratio=ratio)
    out = {}
    for name, press in presses.items():
        out[name] = [greedy(model, torch.tensor([p]), press, spec["new_tokens"]) for p in spec["prompts"]]
        print(name, flush=True)
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main()
