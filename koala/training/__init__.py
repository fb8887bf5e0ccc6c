"""Training: every Koala experiment, the shipped default model included, trains here.

  config      experiments as code (experiments/*.py), their overrides, user errors
  distribute  tf.distribute strategy and precision policy
  records     the records an experiment declares: named, built on first use, read as batches
  inputs      the input pipelines by name (records, photo_crops) and the training data's prior
  losses      the papers' losses and the registry that builds them from a config
  builders    model, optimizer and the bundle (model and metadata) named by a config
  validation  the metrics and TensorBoard images of the periodic evaluation
  loop        the loop itself: checkpoints, resume, NaN stop, history, the bundle
"""
