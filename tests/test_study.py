"""The "Fake or real?" study: statistics, votes database, catalog, and the real server.

The server tests start `koala study serve` as a subprocess on a free loopback port, so
they cover the command, a real uvicorn, and a kill of the server process.
"""

import concurrent.futures
import hashlib
import hmac
import http.client
import http.cookiejar
import json
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request

import cv2
import hostile_corpus
import numpy as np
import pytest
from PIL import Image

from koala.study import catalog as study_catalog
from koala.study import db as study_db
from koala.study import stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_KEY = "test-results-key"
PER_KIND = 10  # photos of each kind in the served study


def write_photos(folder, count, seed):
    """`count` small random colour PNGs in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        cv2.imwrite(str(folder / f"photo{index:02d}.png"),
                    rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return folder


# --------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("successes, trials, expected", [
    (0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0)),
    (45, 100, (0.3561, 0.5476)), (0, 0, (0.0, 1.0))])
def test_wilson_interval_matches_published_values(successes, trials, expected):
    assert stats.wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-4)


def test_summary_counts_fooled_and_control_rates_per_image_and_overall():
    images = [("c1", "colorized", "a.png"), ("c2", "colorized", "b.png"),
              ("r1", "real", "a.png"), ("c3", "colorized", "never.png")]
    votes = [("p1", "c1", "colorized", "a.png", "real", 2.0),
             ("p2", "c1", "colorized", "a.png", "real", 4.0),
             ("p1", "c2", "colorized", "b.png", "fake", 6.0),
             ("p1", "r1", "real", "a.png", "fake", 8.0),
             ("p3", "r1", "real", "a.png", "real", 100.0)]
    summary = stats.summarize(votes, images)
    assert summary["participants"] == 3 and summary["votes"] == 5
    assert summary["fooled"]["judged_real"] == 2 and summary["fooled"]["votes"] == 3
    assert summary["real_judged_real"]["rate"] == pytest.approx(0.5)
    assert summary["seconds_per_answer"]["median"] == 6.0
    by_id = {row["id"]: row for row in summary["images"]}
    assert by_id["c1"]["rate"] == 1.0 and by_id["c2"]["rate"] == 0.0
    assert by_id["c3"]["votes"] == 0 and by_id["c3"]["rate"] is None
    assert [row["id"] for row in summary["images"]] == ["c1", "c2", "c3", "r1"]


# --------------------------------------------------------------------------- catalog and database

def test_catalog_serves_only_files_under_its_folders_by_opaque_id(tmp_path):
    real = write_photos(tmp_path / "real", 2, seed=0)
    colorized = write_photos(tmp_path / "colorized", 1, seed=1)
    outside = write_photos(tmp_path / "outside", 1, seed=2)
    (real / "escape.png").symlink_to(outside / "photo00.png")
    (real / "notes.txt").write_text("not a photo")
    secret = b"k" * 32
    catalog = study_catalog.Catalog.from_folders(real, colorized, secret)
    assert sorted(image.name for image in catalog.images.values()) == [
        "photo00.png", "photo00.png", "photo01.png"]
    assert all(image.path.is_relative_to(tmp_path / kind)
               for kind in ("real", "colorized")
               for image in catalog.images.values() if image.kind == kind)
    assert catalog.get(str(real / "photo00.png")) is None and catalog.get("../x") is None
    assert catalog.get(study_catalog.image_id(secret, "real", "photo01.png")).kind == "real"
    jpeg = catalog.jpeg_bytes(study_catalog.image_id(secret, "colorized", "photo00.png"))
    assert jpeg.startswith(b"\xff\xd8")  # every photo is served re-encoded as JPEG


def test_database_accepts_one_vote_per_image_per_participant(tmp_path):
    database = study_db.StudyDB(tmp_path / "study.sqlite")
    images = [study_catalog.StudyImage(f"{index:016x}", "real", f"{index}.png", tmp_path)
              for index in range(3)]
    database.register_images(images)
    participant = database.new_participant([image.id for image in images[:2]])
    first, answered, total = database.progress(participant, {image.id for image in images})
    assert (answered, total) == (0, 2) and first in (images[0].id, images[1].id)
    database.vote(participant, first, "fake")
    with pytest.raises(study_db.AlreadyVoted):
        database.vote(participant, first, "real")
    with pytest.raises(study_db.UnknownImage):  # a photo that is not in this participant's study
        database.vote(participant, images[2].id, "real")
    with pytest.raises(study_db.UnknownParticipant):
        database.vote("nobody-at-all-here", first, "real")
    assert database.progress(participant, {image.id for image in images})[1:] == (1, 2)
    assert [row[4] for row in database.rows()] == ["fake"]


def test_model_colorizes_gray_versions_once_into_the_cache(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    # Strongly coloured photos: the fake colorizer must receive them without colour.
    for index, bgr in enumerate([(255, 0, 0), (0, 200, 255)]):
        cv2.imwrite(str(real / f"p{index}.jpg"), np.full((16, 20, 3), bgr, np.uint8))
    seen = []

    def fake_colorize(image_or_path, model, vividness=None):
        rgb = np.asarray(image_or_path)
        seen.append((model, np.ptp(rgb.astype(int), axis=-1).max()))
        return np.full_like(rgb, 77)

    monkeypatch.setitem(sys.modules, "koala.inference.colorizer",
                        types.SimpleNamespace(colorize=fake_colorize))
    cache = tmp_path / "cache"
    assert study_catalog.colorize_folder(real, cache, "tiny") == 2
    assert study_catalog.colorize_folder(real, cache, "tiny") == 0  # cached
    assert sorted(path.name for path in cache.iterdir()) == ["p0.png", "p1.png"]
    assert seen == [("tiny", 0), ("tiny", 0)]  # gray: R = G = B
    assert (cv2.imread(str(cache / "p0.png")) == 77).all()


def test_results_command_writes_csv_json_and_chart(tmp_path):
    database = study_db.StudyDB(tmp_path / "study.sqlite")
    images = [study_catalog.StudyImage(f"{index:016x}", kind, f"{index}.png", tmp_path)
              for index, kind in enumerate(["colorized", "colorized", "real"])]
    database.register_images(images)
    for answers in (["real", "fake", "real"], ["real", "real", "fake"]):
        participant = database.new_participant([image.id for image in images])
        for image, answer in zip(images, answers):
            database.vote(participant, image.id, answer)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "koala.cli", "study", "results", f"--db={tmp_path / 'study.sqlite'}",
         f"--csv={out}.csv", f"--json={out}.json", f"--chart={out}.png"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "colorized judged real (fooled): 75.0%" in result.stdout
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["participants"] == 2 and summary["fooled"]["judged_real"] == 3
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].startswith("kind,name,id,votes,judged_real,rate")
    assert "colorized,(all),,4,3,0.75" in lines[-2]
    assert cv2.imread(str(tmp_path / "out.png")).shape[0] > 100


# --------------------------------------------------------------------------- the real server

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`koala study serve` on PER_KIND real + colorized photos: (base url, db path, process)."""
    real = write_photos(tmp_path / "real", PER_KIND, seed=3)
    colorized = write_photos(tmp_path / "colorized", PER_KIND, seed=4)
    yield from serve(real, colorized, tmp_path / "study.sqlite")


def serve(real, colorized, db_path):
    """Runs `koala study serve` until the generator is closed; yields (base, db, process)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "koala.cli", "study", "serve", f"--real={real}",
         f"--colorized={colorized}", f"--db={db_path}", f"--port={port}",
         f"--results_key={RESULTS_KEY}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/static/study.js", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.stdout.read().decode()}")
            time.sleep(0.1)
    try:
        yield base, db_path, process
    finally:  # also when the generator is closed early (GeneratorExit at the yield)
        process.kill()
        process.wait(10)
        process.stdout.close()


class Participant:
    """A participant's browser, reduced to a cookie jar and the JSON API."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.opener.open(f"{base}/", timeout=30).close()  # the page sets the participant cookie
        self.id = next(iter(self.jar)).value

    def next(self):
        with self.opener.open(f"{self.base}/api/next", timeout=30) as response:
            return json.load(response)

    def vote(self, image, answer, body=None, content_type="application/json"):
        """(status, JSON reply) of a vote; `body` replaces the well-formed one."""
        data = json.dumps({"image": image, "answer": answer}).encode() if body is None else body
        request = urllib.request.Request(f"{self.base}/api/vote", data=data,
                                         headers={"Content-Type": content_type})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def answer_all(self, answer_of=lambda index: "fake"):
        """Answer every photo; returns the statuses of the votes."""
        statuses, question = [], self.next()
        while question["image"] is not None:
            status, question = self.vote(question["image"], answer_of(question["answered"]))
            statuses.append(status)
            if status != 200:
                break
        return statuses


def test_fifty_concurrent_participants_each_vote_stored_exactly_once(server):
    base, db_path, _ = server
    participants = 50

    def one_participant(index):
        return Participant(base).answer_all(lambda step: "real" if (index + step) % 2 else "fake")

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(participants) as pool:
        statuses = [status for result in pool.map(one_participant, range(participants))
                    for status in result]
    seconds = time.monotonic() - start
    errors = sum(status != 200 for status in statuses)
    print(f"\nload test: {participants} participants, {len(statuses)} votes in {seconds:.1f} s "
          f"({len(statuses) / seconds:.0f} votes/s), {errors} errors")
    assert errors == 0 and len(statuses) == participants * 2 * PER_KIND
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT participant, COUNT(*), COUNT(DISTINCT image) FROM votes"
                            " GROUP BY participant").fetchall()
    assert len(rows) == participants and all(row[1:] == (2 * PER_KIND,) * 2 for row in rows)
    with urllib.request.urlopen(f"{base}/results.json?key={RESULTS_KEY}", timeout=30) as response:
        summary = json.load(response)
    assert summary["participants"] == participants
    assert summary["votes"] == participants * 2 * PER_KIND
    assert summary["fooled"]["votes"] == participants * PER_KIND
    assert seconds < 45


def raw_get(base, path):
    """Status of a GET sent exactly as written (urllib would normalise '..')."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def test_path_traversal_and_malformed_votes_are_refused(server, tmp_path):
    base, db_path, _ = server
    for path in ["/image/../../../etc/passwd", "/image/..%2F..%2F..%2Fetc%2Fpasswd",
                 f"/image/{tmp_path / 'real' / 'photo00.png'}", "/image/photo00.png",
                 "/static/../app.py", "/static/..%2Fapp.py", "/static/study.html",
                 "/../../etc/passwd", "/results.json", "/results.csv?key=wrong"]:
        assert 400 <= raw_get(base, path) < 500, path
    participant = Participant(base)
    image = participant.next()["image"]
    unknown = "0123456789abcdef"
    refused = {
        "not JSON": participant.vote(image, "real", body=b"{image: 1"),
        "wrong content type": participant.vote(image, "real", content_type="text/plain"),
        "missing answer": participant.vote(image, "real",
                                           body=json.dumps({"image": image}).encode()),
        "extra field": participant.vote(image, "real", body=json.dumps(
            {"image": image, "answer": "real", "weight": 100}).encode()),
        "bad answer": participant.vote(image, "maybe"),
        "image not a string": participant.vote(["x"], "real"),
        "unknown image": participant.vote(unknown, "real"),
        "path as image": participant.vote("../../etc/passwd", "real"),
        "too large": participant.vote(image, "real", body=b" " * 4096 + b"{}"),
    }
    expected = {"not JSON": 400, "wrong content type": 415, "missing answer": 422,
                "extra field": 422, "bad answer": 422, "image not a string": 422,
                "unknown image": 404, "path as image": 404, "too large": 413}
    assert {name: status for name, (status, _) in refused.items()} == expected
    stranger = Participant(base)
    stranger.opener = urllib.request.build_opener()  # no cookie at all
    assert stranger.vote(image, "real")[0] == 403
    stranger.opener.addheaders = [("Cookie", "koala_participant=" + "A" * 22)]  # a forged one
    assert stranger.vote(image, "real")[0] == 403
    assert participant.vote(image, "real")[0] == 200
    assert participant.vote(image, "fake")[0] == 409  # one vote per image per participant
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*), MIN(answer) FROM votes").fetchone() == (1, "real")


def test_votes_committed_before_a_kill_survive_it(server):
    base, db_path, process = server
    acknowledged, lock, stop = [], threading.Lock(), threading.Event()
    refused = []  # (image, status) of answers other than 200: asserted in the main thread,
    # where a failed assertion fails the test (one raised in a thread is only printed)

    def vote_until_stopped(participant):
        question = participant.next()
        while question["image"] is not None and not stop.is_set():
            image = question["image"]
            try:
                status, question = participant.vote(image, "real")
            except (OSError, http.client.HTTPException):  # the server died under this request
                return
            with lock:
                if status != 200:
                    refused.append((image, status))
                    return
                acknowledged.append((participant, image))

    participants = [Participant(base) for _ in range(6)]
    threads = [threading.Thread(target=vote_until_stopped, args=(participant,))
               for participant in participants]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)  # mid-study: other votes are in flight
    process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert refused == []
    assert len(acknowledged) >= 20
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = set(conn.execute("SELECT participant, image FROM votes").fetchall())
    assert {(participant.id, image) for participant, image in acknowledged} <= stored


# --------------------------------------------------------------------------- ids, bytes that tell nothing

def test_ids_differ_between_studies_and_are_stable_within_one(tmp_path):
    real = write_photos(tmp_path / "real", 3, seed=5)
    colorized = write_photos(tmp_path / "colorized", 3, seed=6)  # the same file names
    first, second = (study_db.StudyDB(tmp_path / f"{name}.sqlite") for name in ("a", "b"))
    ids = {name: set(study_catalog.Catalog.from_folders(real, colorized, db.secret()).images)
           for name, db in (("a", first), ("b", second))}
    assert len(ids["a"]) == 6 and not ids["a"] & ids["b"]
    reopened = study_db.StudyDB(tmp_path / "a.sqlite")  # a restart of study "a"
    assert set(study_catalog.Catalog.from_folders(real, colorized, reopened.secret()).images) \
        == ids["a"]
    guessable = {hashlib.sha256(f"{kind}\0photo{i:02d}.png".encode()).hexdigest()[:16]
                 for kind in ("real", "colorized") for i in range(3)}
    assert not guessable & ids["a"]  # the old, secret-less ids
    assert study_catalog.Catalog.from_folders(real, colorized).images.keys() != ids["a"]


def jpeg_segments(data):
    """[(marker, payload)] of a JPEG up to its scan data (SOS)."""
    segments, position = [], 2
    assert data[:2] == b"\xff\xd8"
    while True:
        marker = data[position + 1]
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        segments.append((marker, data[position + 4:position + 2 + length]))
        if marker == 0xDA:  # start of scan: the rest is entropy-coded pixels
            return segments
        position += 2 + length


def hostile_real_photo(path, rgb):
    """A real photo as a phone writes it: JPEG, Display-P3 profile, EXIF orientation, comment."""
    p3_image, profile = hostile_corpus.to_display_p3(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: must be served upright
    exif[0x0110] = "Koala Phone 3"  # camera model
    p3_image.transpose(Image.Transpose.ROTATE_90).save(
        path, quality=97, subsampling=0, icc_profile=profile, exif=exif, comment=b"real photo")


def test_no_url_header_or_image_byte_tells_real_from_colorized(tmp_path):
    base_rgb = hostile_corpus.base_photo(96, 144)
    (tmp_path / "real").mkdir()
    (tmp_path / "colorized").mkdir()
    photos = [np.roll(base_rgb, 7 * index, axis=1) for index in range(3)]
    for index, rgb in enumerate(photos):
        hostile_real_photo(tmp_path / "real" / f"photo{index}.jpg", rgb)
        cv2.imwrite(str(tmp_path / "colorized" / f"photo{index}.png"), rgb[..., ::-1])
    server_run = serve(tmp_path / "real", tmp_path / "colorized", tmp_path / "study.sqlite")
    base, db_path, _ = next(server_run)
    try:
        participant = Participant(base)
        served, question = {}, participant.next()
        while question["image"] is not None:
            assert question["url"] == f"/image/{question['image']}"
            with participant.opener.open(base + question["url"], timeout=30) as response:
                headers = {k: v for k, v in response.headers.items()
                           if k.lower() not in ("date", "content-length")}
                served[question["image"]] = (headers, response.read())
            question = participant.vote(question["image"], "real")[1]
    finally:
        server_run.close()
    with sqlite3.connect(db_path) as conn:
        rows = {row[0]: row[1:] for row in conn.execute("SELECT id, kind, name FROM images")}
        secret = conn.execute("SELECT value FROM study WHERE key = 'secret'").fetchone()[0]
    assert set(served) == set(rows) and len(rows) == 6
    assert sorted(rows.values()) == sorted(
        [("real", f"photo{index}.jpg") for index in range(3)]
        + [("colorized", f"photo{index}.png") for index in range(3)])
    # each id as documented, computed here (not by the code under test): 16 hex digits of
    # HMAC-SHA256(secret, "kind\0relative name"), the 32-byte secret kept in the database
    assert len(secret) == 32
    assert {image: hmac.new(secret, f"{kind}\0{name}".encode(), hashlib.sha256).hexdigest()[:16]
            for image, (kind, name) in rows.items()} == {image: image for image in rows}
    headers = [h for h, _ in served.values()]
    assert all(h == headers[0] for h in headers)  # the same headers for every photo
    structure = {}
    for image, (_, data) in served.items():
        segments = jpeg_segments(data)
        markers = [m for m, _ in segments]
        assert 0xE1 not in markers and 0xE2 not in markers and 0xFE not in markers  # no EXIF,
        structure[image] = segments  # ICC or comment
    first = next(iter(structure.values()))
    assert all(segments == first for segments in structure.values())  # tables, size, all
    pixels = {rows[image]: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
              .astype(np.float64) for image, (_, data) in served.items()}
    for index in range(3):  # the real photo is served upright and in sRGB: as its twin
        real, fake = pixels["real", f"photo{index}.jpg"], pixels["colorized", f"photo{index}.png"]
        assert real.shape == fake.shape == base_rgb.shape
        assert np.abs(real - fake).mean() < 3.0  # unconverted P3 would be off by ~7
