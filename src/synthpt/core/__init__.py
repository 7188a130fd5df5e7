"""The floor every stage stands on; it imports nothing above itself.

- ``errors``: the one user-facing exception; ``io``: atomic, crash-safe file writes;
- ``distributed``: data-parallel helpers; ``runinfo``: versions and config hashes;
- ``models``: loading a backbone (hub id, folder, ``.gguf``, built-in names);
- ``scoring``: template encoding and verbalizer log-probabilities; ``classify``: batched
  prediction and a task's metrics; ``soft_prompt``: the soft prompt and its PEFT files;
- ``batches``: seeded batch streams; ``checkpointing``: resumable training state;
- ``cache``: the content-addressed stage cache; ``progress``: bars in a terminal, lines in a log.
"""
