"""Votes of the study in SQLite: one transaction per vote, WAL, durable on commit.

WAL lets the results be read while participants vote; synchronous=FULL makes a vote that
was answered "stored" survive a kill of the server (and a power cut). The primary key
(participant, image) is what enforces one vote per image per participant, so two racing
requests cannot both succeed.
"""

import json
import random
import secrets
import sqlite3
import threading
import time

ANSWERS = ("real", "fake")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS study (
    key TEXT PRIMARY KEY,  -- 'secret': the HMAC key of this study's image ids
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('real', 'colorized')),
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    image_order TEXT NOT NULL  -- JSON list of image ids: this participant's random order
);
CREATE TABLE IF NOT EXISTS votes (
    participant TEXT NOT NULL REFERENCES participants (id),
    image TEXT NOT NULL REFERENCES images (id),
    answer TEXT NOT NULL CHECK (answer IN ('real', 'fake')),
    answered REAL NOT NULL,
    seconds REAL NOT NULL,  -- since this participant's previous answer (or arrival)
    PRIMARY KEY (participant, image)
);
"""


class VoteError(Exception):
    """A vote that must not be stored."""


class UnknownParticipant(VoteError):
    pass


class UnknownImage(VoteError):
    """Not a photo of this participant's study."""


class AlreadyVoted(VoteError):
    pass


class StudyDB:
    """The study database; safe to use from many threads (one connection per thread)."""

    def __init__(self, path):
        self.path = str(path)
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return _Transaction(conn)

    def secret(self):
        """This study's secret (32 random bytes, made on first use): the key of its image ids.

        It lives only here, so ids are stable across restarts of one study, differ between
        studies, and cannot be computed from file names by a participant.
        """
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR IGNORE INTO study (key, value) VALUES ('secret', ?)",
                         (secrets.token_bytes(32),))
            return conn.execute("SELECT value FROM study WHERE key = 'secret'").fetchone()[0]

    def register_images(self, images):
        """Record (or keep) the catalog's photos, so results can name them later."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO images (id, kind, name) VALUES (?, ?, ?)",
                             [(image.id, image.kind, image.name) for image in images])

    def new_participant(self, image_ids):
        """A new participant id, with its own random order of `image_ids`."""
        participant = secrets.token_urlsafe(16)
        order = list(image_ids)
        random.SystemRandom().shuffle(order)
        with self._connection() as conn:
            conn.execute("INSERT INTO participants (id, started, image_order) VALUES (?, ?, ?)",
                         (participant, time.time(), json.dumps(order)))
        return participant

    def _order(self, conn, participant):
        row = conn.execute("SELECT image_order FROM participants WHERE id = ?",
                           (participant,)).fetchone()
        if row is None:
            raise UnknownParticipant(participant)
        return json.loads(row[0])

    def is_participant(self, participant):
        with self._connection() as conn:
            return conn.execute("SELECT 1 FROM participants WHERE id = ?",
                                (participant,)).fetchone() is not None

    def progress(self, participant, available):
        """(next image id or None when done, answered count, total) for a participant.

        `available` is the set of ids the server can show now: photos removed from the
        folders since the participant arrived are left out of their study.
        """
        with self._connection() as conn:
            order = [image for image in self._order(conn, participant) if image in available]
            answered = {row[0] for row in conn.execute(
                "SELECT image FROM votes WHERE participant = ?", (participant,))}
        remaining = [image for image in order if image not in answered]
        return (remaining[0] if remaining else None), len(order) - len(remaining), len(order)

    def vote(self, participant, image, answer):
        """Store one answer in its own transaction; raises a VoteError if it is not valid."""
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}")
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")  # write lock first: no race from check to insert
            if image not in self._order(conn, participant):
                raise UnknownImage(image)
            previous = conn.execute(
                "SELECT MAX(COALESCE((SELECT MAX(answered) FROM votes WHERE participant = ?), 0),"
                " started) FROM participants WHERE id = ?",
                (participant, participant)).fetchone()[0]
            now = time.time()
            try:
                conn.execute("INSERT INTO votes (participant, image, answer, answered, seconds)"
                             " VALUES (?, ?, ?, ?, ?)",
                             (participant, image, answer, now, max(0.0, now - previous)))
            except sqlite3.IntegrityError as error:
                raise AlreadyVoted(image) from error

    def rows(self):
        """Every vote with its photo: (participant, image id, kind, name, answer, seconds)."""
        with self._connection() as conn:
            return conn.execute(
                "SELECT v.participant, v.image, i.kind, i.name, v.answer, v.seconds"
                " FROM votes v JOIN images i ON i.id = v.image"
                " ORDER BY v.answered").fetchall()

    def images(self):
        """Every photo ever registered: (id, kind, name)."""
        with self._connection() as conn:
            return conn.execute("SELECT id, kind, name FROM images ORDER BY kind, name").fetchall()

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Transaction:
    """`with` block over a connection: commits an open transaction on success, else rolls back."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
