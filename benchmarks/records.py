"""Images/s of the records build vs the decode+resize-only ceiling on the same files.

Prints one JSON line. All measurements use the same files (a spread slice of
../shared/data/photos/train) and a warm page cache; each is the best of --repeats runs,
since the machine is shared. The ceiling is the plain loop a user would write (decode +
resize, one process); the build may use all cores, which is how it reaches the issue's goal
(ratio >= 0.5 without an embedding). For transparency the line also gives the ceiling with
the same number of threads as the build's processes, and the ratio to it. The Beam
DirectRunner build (multi_processing, one SDK worker per build process) writes the same
bytes; its img/s includes starting the workers (each imports TensorFlow and builds the Lab
table), which a long build amortizes, so the line also gives that start-up time (a build of
one chunk) and the marginal img/s past it.
"""

import concurrent.futures
import json
import math
import os
import pathlib
import sys
import tempfile
import time

from absl import app, flags, logging

from koala.data import images, sources, writer

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("KOALA_SHARED", REPO.parent / "shared"))

FLAGS = flags.FLAGS
flags.DEFINE_string("input", str(SHARED / "data" / "photos" / "train"), "photo folder")
flags.DEFINE_integer("images", 600, "number of files (spread evenly over the folder)")
flags.DEFINE_integer("size", 224, "working size")
flags.DEFINE_integer("processes", 0, "build processes and parallel-ceiling threads (0: cores)")
flags.DEFINE_integer("repeats", 3, "best of this many runs each")


def _ceiling(paths, size, threads):
    """Decode + resize only, with the same decoder and resize as the writer."""
    def one(path):
        rgb = images.decode(path.read_bytes(), target_size=size)
        return images.resize(rgb, size)[0]

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, paths):
            pass
    return len(paths) / (time.perf_counter() - start)


def _build_seconds(paths, root, size, processes, runner="local"):
    source = sources.FileSource(paths, root, f"benchmark slice of {root}")
    settings = writer.Settings(source=source.description, size=size)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        if runner == "beam":
            from koala.data import beam_writer

            beam_writer.build(source, out_dir, settings, processes=processes)
        else:
            writer.build(source, out_dir, settings, processes=processes)
        return time.perf_counter() - start


def _beam_installed():
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    root = pathlib.Path(FLAGS.input)
    if not root.is_dir():
        print(json.dumps({"benchmark": "records", "skipped": f"{root} is absent"}))
        return
    every = sources.folder_source(root).paths
    paths = every[::max(1, len(every) // FLAGS.images)][:FLAGS.images]
    processes = FLAGS.processes or os.cpu_count() or 1
    for path in paths:  # warm the page cache so no measurement pays for the disk
        path.read_bytes()
    ceiling, parallel_ceiling = 0.0, 0.0
    build, beam, beam_startup = math.inf, math.inf, math.inf  # seconds
    with_beam = _beam_installed()
    for _ in range(FLAGS.repeats):
        ceiling = max(ceiling, _ceiling(paths, FLAGS.size, 1))
        parallel_ceiling = max(parallel_ceiling, _ceiling(paths, FLAGS.size, processes))
        build = min(build, _build_seconds(paths, root, FLAGS.size, processes))
        if with_beam:
            beam = min(beam, _build_seconds(paths, root, FLAGS.size, processes, "beam"))
            beam_startup = min(beam_startup, _build_seconds(
                paths[:writer.CHUNK], root, FLAGS.size, processes, "beam"))
    build = len(paths) / build
    beam_figures = {"beam_direct_img_per_s": None, "beam_skipped": "apache-beam absent"}
    if with_beam:
        marginal = (len(paths) - writer.CHUNK) / max(beam - beam_startup, 1e-9)
        beam_figures = {"beam_direct_img_per_s": round(len(paths) / beam, 1),
                        "beam_ratio": round(len(paths) / beam / ceiling, 3),
                        "beam_startup_s": round(beam_startup, 1),
                        "beam_marginal_img_per_s": round(marginal, 1),
                        "beam_marginal_ratio": round(marginal / ceiling, 3)}
    print(json.dumps({"benchmark": "records", "images": len(paths), "size": FLAGS.size,
                      "processes": processes, "build_img_per_s": round(build, 1),
                      "ceiling_img_per_s": round(ceiling, 1),
                      "ratio": round(build / ceiling, 3),
                      "parallel_ceiling_img_per_s": round(parallel_ceiling, 1),
                      "ratio_to_parallel_ceiling": round(build / parallel_ceiling, 3),
                      **beam_figures,
                      "load_average": round(os.getloadavg()[0], 1)}))
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
