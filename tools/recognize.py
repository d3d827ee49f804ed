"""Say which digits (0-9) are spoken in recordings: the study's best unseen-speaker model.

    python tools/recognize.py my_seven.wav pin.m4a other/recordings/   # files and folders, any mix
    python tools/recognize.py --retrain my_seven.wav                   # train the model afresh first

Formats: wav (8-32 bit integer or float, read by audio.read_wav), and flac, ogg/Opus, mp3, m4a/AAC,
webm and the like (decoded by PyAV, FFmpeg's decoders in its wheel); any sample rate, mono or stereo
(the channels averaged). A folder stands for its recordings (.wav .flac .ogg .oga .opus .mp3 .m4a .mp4
.aac .webm .weba .mka, any case, sorted, hidden ones skipped); its subfolders are not searched: pass
them too (e.g. recordings/*/).

Output: one line per readable file on stdout, tab-separated: the path, the digits spoken in it and
the probability of that reading, e.g. "my_seven.wav<TAB>7<TAB>0.983" or "pin.m4a<TAB>4711<TAB>0.912".
A recording may be of any length: its spoken parts are found by their loudness
(reader.speech_segments: silence and steady room noise before, between and after them are
skipped; pauses under 0.2 s do not split a digit) and each part is read as one digit; a part the
model is unsure of (its likeliest digit under 90 %) is heard again played 1.1 and 0.9 times as fast,
and the three readings are averaged (reader.classify). The probability is the product of the
digits' own probabilities (the highest of each part's ten), the model's probability of the whole
sequence if the parts are right and independent.

The model is recognizer.RECIPE trained on all 3,000 FSDD recordings: a small network on Google's
pretrained speech embedding and a convolutional network on MFCCs, their log-probabilities summed
(the MFCC network's weighted by recognizer.MFCC_WEIGHT). The first run downloads FSDD into --data (set
FSDD_SOURCE to a local archive to skip the download) and trains it, which takes minutes (the embeddings of the
recordings and their perturbed copies, on every core, kept in --models for later trainings, then the
networks), and saves it as --models/recognizer.npz, numpy
arrays that later runs read without torch, in a second or two. A model file that is unreadable, or
was trained with another recipe, recipe definition, front end or file format, is retrained with a
message; so is any with --retrain.

Exit status: 0 every file was classified; 1 some files could not be read or decoded (each is
reported on stderr as "error: <file> ...", the others are still classified); 2 nothing was
classified: a path is missing or a folder holds no recording, or the model could not be trained
(e.g. no FSDD).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import audio  # noqa: E402
import reader  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: paths, --retrain, --data, --models."""
    summary, details = __doc__.split("\n", 1)
    parser = argparse.ArgumentParser(description=summary, epilog=details,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_FOLDER", help="recordings or folders")
    parser.add_argument("--retrain", action="store_true", help="train the model afresh, even if one is saved")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="where FSDD is (downloaded on first use)")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="where the trained model is kept")
    return parser.parse_args(argv)


def print_readings(readings: list[reader.Reading]) -> int:
    """Print path, digits and probability of every readable file (errors on stderr); how many failed."""
    for reading in readings:
        if reading.error:
            print(f"error: {reading.error}", file=sys.stderr)
    for reading in readings:
        if not reading.error:
            print(f"{reading.file}\t{reading.digits}\t{reading.probability:.3f}")
    return sum(reading.error is not None for reading in readings)


def trained_model(args: argparse.Namespace) -> reader.Model:
    """recognizer.RECIPE's model: the saved one if it was trained with this recipe, else trained now (torch)."""
    import helpers
    import recognizer
    helpers.set_threads(1)  # a small network: one thread is as fast, and never slowed by a busy core
    return recognizer.recognizer(args.models, args.data, recognizer.RECIPE, args.retrain)


def main(argv: list[str] | None = None) -> int:
    """Classify the files on the command line; the exit status (see the module docstring)."""
    args = parse_args(argv)
    try:
        files = reader.files_to_classify(args.paths)
        # a model saved by this very code is read without torch; else its recipe is checked, or it is trained
        model = None if args.retrain else reader.current_model(args.models / reader.MODEL_FILE)
        return 1 if print_readings(reader.read_files(model or trained_model(args), files)) else 0
    except (reader.UsageError, audio.FSDDError) as err:  # e.g. openwakeword missing: the front end cannot run
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
