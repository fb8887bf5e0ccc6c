"""`koala app`: a web page to colorize photos in a browser.

  koala app [--model default] [--host 127.0.0.1 --port 8000] [--max_upload_mb 50]
            [--max_pixels 50000000]

Open the printed address, pick or drop photos: each comes back colorized at its full
resolution, beside its gray version, with a before/after slider and a PNG download.
Binds to loopback unless --host says otherwise; uploads are held in memory only.
"""

from absl import flags, logging

from koala.errors import UserError

flags.DEFINE_string("model", "default", "'default', a bundle directory or a training workdir")
flags.DEFINE_string("host", "127.0.0.1", "address to bind (loopback unless told otherwise)")
flags.DEFINE_integer("port", 8000, "TCP port")
flags.DEFINE_integer("max_upload_mb", 50, "largest upload accepted, in MB")
flags.DEFINE_integer("max_pixels", None, "largest photo accepted, in pixels, read from its "
                     "header (default: the app's 50 megapixels)", lower_bound=1)

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]}")
    import uvicorn  # noqa: PLC0415 (heavy imports only once the flags are valid)

    from koala import web
    from koala.app.server import DEFAULT_MAX_PIXELS, create_colorize_app
    from koala.inference import colorizer as colorizer_lib

    colorizer = colorizer_lib.Colorizer(FLAGS.model)  # a missing model: one line (koala.errors)
    if not web.is_loopback(FLAGS.host):
        logging.warning("binding %s: the app is reachable from other machines", FLAGS.host)
    web_app = create_colorize_app(colorizer, max_bytes=FLAGS.max_upload_mb << 20,
                                  max_pixels=FLAGS.max_pixels or DEFAULT_MAX_PIXELS)
    print(f"Koala app ({colorizer.bundle.name}, {colorizer.runtime.engine}): "
          f"http://{FLAGS.host}:{FLAGS.port}/", flush=True)
    uvicorn.run(web_app, host=FLAGS.host, port=FLAGS.port, log_level="warning",
                access_log=False, limit_concurrency=64, timeout_keep_alive=5)
