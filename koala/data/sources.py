"""Where images come from: a folder (recursive), a text file of paths, or `tfds:NAME[:SPLIT]`.

A source is an indexed list of items, so the writer can split it into train/val and shards
deterministically and read any shard alone (resume, several workers). Folders and lists
read files by index; tfds reads contiguous index ranges as split slices, which is why a
tfds source asks for no permutation (tfds already shuffled the examples when it prepared
the data set).
"""

import os
import pathlib

from absl import logging

from koala.image_io import IMAGE_SUFFIXES

TFDS_PREFIX = "tfds:"


class FileSource:
    """Image files by path; ids are paths relative to the root (POSIX style)."""

    needs_shuffle = True

    def __init__(self, paths, root, description):
        self.paths = list(paths)
        self.root = pathlib.Path(root)
        self.description = description

    def __len__(self):
        return len(self.paths)

    def item_id(self, index):
        path = pathlib.Path(self.paths[index])
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def read(self, indices):
        """Yield (id, bytes or a Skip-worthy OSError) for the given indices, in order."""
        for index in indices:
            try:
                payload = pathlib.Path(self.paths[index]).read_bytes()
            except OSError as error:
                payload = error
            yield self.item_id(index), payload

    def limit(self, count):
        self.paths = self.paths[:count]


def folder_source(root):
    """Every image file under root (recursive), sorted for a stable order.

    Broken links are kept, so that the build names them as unreadable instead of losing
    them silently."""
    root = pathlib.Path(root)
    paths = sorted(p for p in root.rglob("*")
                   if not p.is_dir() and p.suffix.lower() in IMAGE_SUFFIXES)
    return FileSource(paths, root, f"folder {root}")


def list_source(list_file):
    """One path a line; relative paths are relative to the list file's folder."""
    list_file = pathlib.Path(list_file)
    base = list_file.parent
    lines = [line.strip() for line in list_file.read_text().splitlines()]
    paths = [p if os.path.isabs(p) else base / p for p in lines if p and not p.startswith("#")]
    return FileSource(paths, base, f"list {list_file}")


class TfdsUnavailable(RuntimeError):
    """The tfds data set is not prepared locally and may not be downloaded."""


class TfdsSource:
    """A split of a tfds image data set; ids are tfds keys (`tfds_id`)."""

    needs_shuffle = False

    def __init__(self, name, split, data_dir=None, manual_dir=None, download=False):
        import tensorflow_datasets as tfds  # only tfds users pay for the import

        self.tfds = tfds
        self.description = f"tfds {name}:{split}"
        self.split = split
        self.builder = tfds.builder(name, data_dir=data_dir)
        if not self.builder.is_prepared():
            self._prepare(name, manual_dir, download)
        self.image_key = next((key for key, feature in self.builder.info.features.items()
                               if isinstance(feature, tfds.features.Image)), None)
        if self.image_key is None:
            raise ValueError(f"tfds data set {name} has no image feature")
        self.size = self.builder.info.splits[split].num_examples

    def _prepare(self, name, manual_dir, download):
        """Build the data set from manual files or (when allowed) the internet; never retry."""
        where = self.builder.data_dir
        if manual_dir is None and not download:
            raise TfdsUnavailable(
                f"tfds data set {name!r} is not prepared in {where}, and downloading is off "
                "(machines without internet would retry for minutes). Provide the data: "
                f"pass --tfds_manual_dir DIR holding the files tfds expects for {name} "
                "(see `tfds build --help`; imagenet2012 needs ILSVRC2012_img_train.tar and "
                "ILSVRC2012_img_val.tar), or --tfds_data_dir where it is already prepared, or "
                "unpack the images into a folder and pass --input FOLDER. Use "
                "--tfds_download to let tfds download it when online.")
        config = self.tfds.download.DownloadConfig(manual_dir=manual_dir)
        logging.info("preparing tfds %s in %s", name, where)
        self.builder.download_and_prepare(download_config=config)

    def __len__(self):
        return self.size

    def limit(self, count):
        self.size = min(self.size, count)

    def read(self, indices):
        """Yield (tfds_id, uint8 array) for a contiguous, ascending run of indices."""
        indices = list(indices)
        if not indices:
            return
        start, stop = indices[0], indices[-1] + 1
        if indices != list(range(start, stop)):
            raise ValueError("a tfds source reads contiguous index ranges only")
        split = f"{self.split}[{start}:{stop}]"
        read_config = self.tfds.ReadConfig(add_tfds_id=True)
        data = self.builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
        for example in self.tfds.as_numpy(data):
            yield example["tfds_id"].decode("utf-8"), example[self.image_key]


def open_source(spec, tfds_data_dir=None, tfds_manual_dir=None, tfds_download=False):
    """SOURCE string -> a source: `tfds:NAME[:SPLIT]`, a folder, or a text file of paths."""
    if spec.startswith(TFDS_PREFIX):
        name, _, split = spec[len(TFDS_PREFIX):].partition(":")
        return TfdsSource(name, split or "train", data_dir=tfds_data_dir,
                          manual_dir=tfds_manual_dir, download=tfds_download)
    path = pathlib.Path(spec)
    if path.is_dir():
        return folder_source(path)
    if path.is_file():
        return list_source(path)
    raise FileNotFoundError(f"--input {spec!r} is neither a folder, a file list, nor tfds:NAME")
