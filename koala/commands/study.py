"""`koala study serve|results`: the "Fake or real?" user study and its results.

  koala study serve --real DIR --colorized DIR [--model NAME] [--db study.sqlite]
                    [--host 127.0.0.1 --port 8080]
  koala study results --db study.sqlite [--csv F] [--json F] [--chart F.png]

With --model, the gray versions of the real photos are colorized by that model (koala
colorize's model names and bundle paths) into the --colorized folder, which then acts as a
cache: photos already there are not colorized again.
"""

import json
import pathlib
import re
import secrets

from absl import flags, logging

from koala import image_io
from koala.errors import UserError

flags.DEFINE_string("real", None, "serve: folder of real colour photos")
flags.DEFINE_string("colorized", None,
                    "serve: folder of colorized photos (with --model: where they are cached; "
                    "default <db>.<model>.colorized/)")
flags.DEFINE_string("model", None, "serve: colorize the real photos' gray versions with this model")
flags.DEFINE_float("vividness", None, "serve --model: 0 (most accurate) .. 1 (most vivid); "
                   "default: the model's own", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("db", "study.sqlite", "the votes database (SQLite)")
flags.DEFINE_string("host", "127.0.0.1", "serve: address to bind (loopback unless told otherwise)")
flags.DEFINE_integer("port", 8080, "serve: TCP port")
flags.DEFINE_string("results_key", None, "serve: key of the results pages (default: random)")
flags.DEFINE_integer("max_pixels", image_io.DEFAULT_MAX_PIXELS,
                     "serve: refuse photos with more pixels (read from the header)", lower_bound=1)
flags.DEFINE_string("csv", None, "results: write the per-photo table as CSV here")
flags.DEFINE_string("json", None, "results: write the full summary as JSON here")
flags.DEFINE_string("chart", None, "results: write a bar chart (seed 001 Fig. 6) here (PNG)")

FLAGS = flags.FLAGS
USAGE = "usage: koala study serve --real DIR --colorized DIR | koala study results --db FILE"


def _colorized_folder():
    if FLAGS.colorized:
        return pathlib.Path(FLAGS.colorized)
    if not FLAGS.model:
        raise UserError("serve needs --colorized DIR (or --model NAME to make them)")
    safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "_", FLAGS.model).strip("._") or "model"
    if FLAGS.vividness is not None:  # each vividness has its own cache of colorized photos
        safe_model += f"@{FLAGS.vividness:g}"
    return pathlib.Path(f"{FLAGS.db}.{safe_model}.colorized")


def serve():
    if not FLAGS.real:
        raise UserError("serve needs --real DIR")
    if not pathlib.Path(FLAGS.real).is_dir():  # before a model colorizes into the cache
        raise UserError(f"--real {FLAGS.real}: no such folder")
    colorized = _colorized_folder()
    import uvicorn

    from koala import web
    from koala.study.catalog import Catalog, colorize_folder
    from koala.study.db import StudyDB
    from koala.study.server import create_study_app

    if FLAGS.model:
        made = colorize_folder(FLAGS.real, colorized, FLAGS.model, FLAGS.vividness)
        logging.info("colorized %d photos with %s into %s", made, FLAGS.model, colorized)
    database = StudyDB(FLAGS.db)
    try:  # ids under the study's own secret: stable across restarts, unguessable
        catalog = Catalog.from_folders(FLAGS.real, colorized, database.secret(), FLAGS.max_pixels)
    except ValueError as error:  # no photos in either folder
        raise UserError(str(error)) from None
    if not web.is_loopback(FLAGS.host):
        logging.warning("binding %s: the study is reachable from other machines", FLAGS.host)
    key = FLAGS.results_key or secrets.token_urlsafe(12)
    kinds = [image.kind for image in catalog.images.values()]
    base = f"http://{FLAGS.host}:{FLAGS.port}"
    print(f"study of {kinds.count('real')} real and {kinds.count('colorized')} colorized photos, "
          f"votes in {FLAGS.db}\n  participants: {base}/\n  results:      {base}/results?key={key}",
          flush=True)
    uvicorn.run(create_study_app(catalog, database, key), host=FLAGS.host, port=FLAGS.port,
                log_level="warning", access_log=False)


def results():
    from koala.study import results, stats
    from koala.study.db import StudyDB

    if not pathlib.Path(FLAGS.db).is_file():
        raise UserError(f"no study database at {FLAGS.db}")
    database = StudyDB(FLAGS.db)
    summary = stats.summarize(database.rows(), database.images())
    database.close()
    for path, text in ((FLAGS.csv, lambda: results.to_csv(summary)),
                       (FLAGS.json, lambda: json.dumps(summary, indent=2) + "\n")):
        if path:
            pathlib.Path(path).write_text(text())
    if FLAGS.chart:
        from koala.study.chart import save_chart

        save_chart(summary, FLAGS.chart)
    print(results.to_text(summary))


def main(argv):
    commands = {"serve": serve, "results": results}
    if len(argv) != 2 or argv[1] not in commands:
        raise UserError(USAGE)
    commands[argv[1]]()
    return 0
