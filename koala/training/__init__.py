"""Training: every Koala experiment, the shipped default model included, trains here.

  config      experiments as code (experiments/*.py) and their overrides
  distribute  tf.distribute strategy and precision policy
  records     the records an experiment declares: built on first use, read as batches
  builders    model, loss, optimizer and bundle metadata named by a config
  validation  the metrics and TensorBoard images of the periodic evaluation
  loop        the loop itself: checkpoints, resume, NaN stop, history, the bundle
"""
