"""What the loop's periodic evaluation reports: PSNR, AuC, MSE, colourfulness and
gray | prediction | truth rows (the report's learning curves read them from metrics.jsonl)."""

import numpy as np
import tensorflow as tf

from koala import color
from koala.evaluation import metrics


def quality_metrics(gray, truth, prediction, color_space):
    """Means over images: PSNR (dB, RGB), MSE of the target (model units), Hasler and
    Suesstrunk's colourfulness, and Zhang's AuC of the ab error (Lab experiments)."""
    true_rgb = color.target_to_rgb(gray, truth, color_space).numpy()
    pred_rgb = color.target_to_rgb(gray, prediction, color_space).numpy()
    result = {"psnr": float(np.mean([metrics.psnr(p, t) for p, t in zip(pred_rgb, true_rgb)])),
              "mse": float(np.mean(np.square(np.asarray(prediction) - np.asarray(truth)))),
              "colorfulness": float(np.mean([metrics.colorfulness(p * 255.0)
                                             for p in pred_rgb]))}
    if color_space == "lab":
        result["auc"] = metrics.auc(color.unscale_ab(prediction), color.unscale_ab(truth))
    return result


def tensorboard_grid(gray, truth, prediction, color_space):
    """[N, H, 3W, 3] rows of gray | prediction | truth, as TensorBoard shows them."""
    gray = tf.convert_to_tensor(gray, tf.float32)
    gray_rgb = tf.image.grayscale_to_rgb((gray + 1.0) / 2.0)
    return tf.concat([gray_rgb, color.target_to_rgb(gray, prediction, color_space),
                      color.target_to_rgb(gray, truth, color_space)], axis=2)
