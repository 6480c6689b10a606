"""voicelab's training package: `python -m training {autovc,vqvc,vqvae} --data DIR --out RUN_DIR`.

Built on the public API of `vc` only. See `training.loop.Trainer` for the loop and
`training.config` for presets and config files.
"""
