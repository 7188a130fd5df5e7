"""The floor every stage stands on; it imports nothing above itself.

- ``errors``: the one user-facing exception; ``io``: atomic, crash-safe file writes;
- ``distributed``: data-parallel helpers; ``runinfo``: versions and config hashes;
- ``knobs``: config fields that carry their own help, and knobs with a fixed set of values;
- ``models``: loading a backbone (hub id, folder, ``.gguf``, built-in names); ``gguf``: the real
  models that ship as GGUF files inside PyPI packages, found and de-quantised once;
- ``scoring``: template encoding and verbalizer log-probabilities, with ``causal_words`` (label
  words of several tokens on a causal LM, one shared KV cache) and ``seq2seq_scoring`` (the same
  on T5: the encoder runs once); ``classify``: batched prediction and a task's metrics;
- ``soft_prompt``: the soft prompt and where it starts; ``saving``: what every stage writes and
  how it is read back (the soft prompt as a PEFT adapter, label prompts, run records);
- ``batches``: seeded batch streams; ``checkpointing``: resumable training state; ``training``: the
  contract every training loop keeps and the step loop they share;
- ``cache``: the content-addressed stage cache; ``progress``: bars in a terminal, lines in a log.
"""
