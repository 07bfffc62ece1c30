"""The `bertnp` command: embed, classify, rank, ner, qa, fill-mask, info, parity, explain, convert, serve.

Texts come from arguments, standard input (one per line), or --input FILE (.txt one per line, .jsonl with
--field, .csv with --column), read as UTF-8. embed and classify also take text pairs: --pair-field (.jsonl),
--pair-column (.csv), or --pairs (TEXT<TAB>TEXT in arguments, .txt lines and standard input). Results
stream out as they are computed (JSONL by default, CSV, or .npy for embeddings), so an error on line 5000
of the input keeps the 4999 rows already written. Errors print one line and exit 1 (model or input) or 2
(usage); --debug shows the traceback. A closed output pipe (`| head`) ends the run quietly; Ctrl-C prints
one line and exits 130.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys

import numpy as np

from .errors import BertnpError, InputError

CHUNK = 1024  # texts read, computed and written at a time


class UsageError(Exception):
    """Options that do not go together: the command's usage line, exit 2, before any model loads."""


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # texts after options (`classify MODEL --labels a,b "text"`): argparse leaves them over
        if not hasattr(args, "texts") or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.texts = [*args.texts, *extra]
    if args.command is None:
        parser.print_usage(sys.stderr)
        return 2
    try:
        if hasattr(args, "texts"):
            check_text_options(args)
        return args.run(args) or 0
    except UsageError as e:
        args.usage.error(str(e))  # exits 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush of stdout has nowhere to fail
        return 0
    except (BertnpError, OSError) as e:
        if args.debug:
            raise
        print(f"bertnp {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bertnp {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertnp", description="BERT embeddings and labels with NumPy.")
    parser.set_defaults(command=None, debug=False)
    commands = parser.add_subparsers(dest="command")

    def common(p, texts=True, pairs=False, outputs=(".jsonl", ".csv")):
        p.set_defaults(usage=p, pairs=False, pair_field=None, pair_column=None)
        p.add_argument("model", help="model folder or Hugging Face hub id (cached)")
        if texts:
            p.add_argument("texts", nargs="*", help="texts (default: --input, else standard input)")
            p.add_argument("--input", help="file of texts: .txt (one per line), .jsonl (--field), .csv (--column)")
            p.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
            p.add_argument("--column", default="text", help="CSV column holding the text (default: text)")
            if pairs:
                p.add_argument("--pair-field", help="JSONL field holding each text's second text (text pairs)")
                p.add_argument("--pair-column", help="CSV column holding each text's second text (text pairs)")
                p.add_argument("--pairs", action="store_true",
                               help="each argument, line of a .txt file or of standard input is a pair: TEXT<TAB>TEXT")
            p.add_argument("--output", type=output_path(outputs),
                           help=f"output file: {', '.join(outputs)} (default: JSONL on standard output)")
            p.add_argument("--batch-size", type=int, default=32)
            p.add_argument("--max-length", type=int, default=None,
                           help="tokens per text, 2 to the model's max_position_embeddings (default: the model's)")
            p.add_argument("--backend", choices=["numpy", "numba"], default=None)
            p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--debug", action="store_true", help="show tracebacks")

    def case_sensitive(p):
        p.add_argument("--case-sensitive", action=argparse.BooleanOptionalAction, default=None,
                       help="--no-case-sensitive lower-cases texts before WordPiece (default: the tokenizer's)")

    embed = commands.add_parser("embed", help="sentence embeddings")
    common(embed, pairs=True, outputs=(".jsonl", ".csv", ".npy"))
    embed.add_argument("--pooling", default=None, help="cls, mean, max, mean_sqrt_len_tokens, pooler")
    embed.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None)
    embed.set_defaults(run=run_embed)

    classify = commands.add_parser("classify", help="labels and scores")
    common(classify, pairs=True)
    classify.add_argument("--top-k", type=top_k_option, default=1,
                          help="labels per text: a positive integer (default: 1), or all")
    classify.add_argument("--labels", help="comma-separated labels (zero-shot for a model without a head)")
    classify.add_argument("--activation", choices=["softmax", "sigmoid", "none"], default=None)
    classify.add_argument("--threshold", type=float, default=0.5)
    case_sensitive(classify)
    classify.add_argument("--long-text", choices=["truncate", "chunk"], default="truncate",
                          help="chunk: windows of --max-length tokens sharing --stride tokens, probabilities "
                               "averaged (default: truncate)")
    classify.add_argument("--stride", type=int, default=None,
                          help="tokens shared by consecutive windows with --long-text chunk (default: max length // 4)")
    classify.add_argument("--coalesce", action="store_true",
                          help="classify each sentence of a text and average them (Spark NLP's coalesceSentences)")
    classify.set_defaults(run=run_classify)

    rank = commands.add_parser("rank", help="rerank the texts for a query with a cross-encoder, best first")
    common(rank)
    rank.add_argument("--query", required=True, help="the query every text is scored against")
    rank.add_argument("--top-k", type=top_k_option, default=None,
                      help="how many texts to keep: a positive integer, or all (the default)")
    case_sensitive(rank)
    rank.set_defaults(run=run_rank)

    ner = commands.add_parser("ner", help="entities in each text (a token-classification checkpoint)")
    common(ner)
    ner.add_argument("--aggregation", choices=["none", "simple", "first", "average", "max"], default="simple",
                     help="how tokens group into entities, as transformers' aggregation_strategy (default: simple)")
    ner.add_argument("--ignore-labels", default="O", help="comma-separated labels to leave out (default: O)")
    ner.add_argument("--stride", type=int, default=None, help="split long texts into windows sharing N tokens")
    ner.set_defaults(run=run_ner)

    qa = commands.add_parser("qa", help="answer each question (the texts) from a context (question answering)")
    common(qa)
    qa.add_argument("--context", help="the context the answers come from")
    qa.add_argument("--context-file", help="a file holding the context")
    qa.add_argument("--top-k", type=int, default=1, help="answers per question")
    qa.add_argument("--max-answer-len", type=int, default=15, help="longest answer, in tokens (default: 15)")
    qa.add_argument("--doc-stride", type=int, default=None, help="tokens shared by the windows of a long context")
    qa.set_defaults(run=run_qa)

    fill = commands.add_parser("fill-mask", help="the masked word of each text (a masked-LM checkpoint)")
    common(fill)
    fill.add_argument("--top-k", type=int, default=5, help="proposals per mask")
    fill.add_argument("--targets", help="comma-separated tokens to score instead of the whole vocabulary")
    fill.set_defaults(run=run_fill_mask)

    info = commands.add_parser("info", help="what a model folder holds, and whether its parts agree")
    common(info, texts=False)
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)

    parity = commands.add_parser("parity", help="compare bertnp with another engine, intermediate by intermediate")
    parity.add_argument("model")
    parity.add_argument("--against", default="transformers", help="transformers (default) or onnx:FILE")
    parity.add_argument("--truth", choices=["float64"], help="compare each float32 engine with bertnp float64")
    parity.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parity.add_argument("--atol", type=float, default=1e-5)
    parity.add_argument("--rtol", type=float, default=1e-5)
    parity.add_argument("--texts", dest="texts_file",  # not args.texts: that names the text commands' texts
                        help="file of texts, one per line (a tab separates a pair); default: built-in")
    parity.add_argument("--json", help="write the comparison as JSON to this file")
    parity.add_argument("--explain", action="store_true",
                        help="which numerics switch brings bertnp closest to the other engine's last hidden state "
                             "(else its pooler, else its logits)")
    parity.add_argument("--layers", action="store_true",
                        help="onnx: also compare every LayerNorm's output (LayerNormalization, EmbedLayerNormalization, "
                             "SkipLayerNormalization), in order, as embeddings.norm and each layer's two norms")
    parity.add_argument("--plot", help="draw the error per intermediate to this PNG (needs matplotlib)")
    parity.add_argument("--backend", choices=["numpy", "numba"], default=None)
    parity.add_argument("--debug", action="store_true")
    parity.set_defaults(run=run_parity)

    explain = commands.add_parser("explain", help="draw attention maps of every layer and head for a text")
    explain.add_argument("model")
    explain.add_argument("text")
    explain.add_argument("--out", default="attention.png")
    explain.add_argument("--layer", type=int, default=None)
    explain.add_argument("--head", type=int, default=None)
    explain.add_argument("--debug", action="store_true")
    explain.set_defaults(run=run_explain)

    convert = commands.add_parser("convert", help="pytorch_model.bin -> model.safetensors, without torch")
    convert.add_argument("source")
    convert.add_argument("destination")
    convert.add_argument("--debug", action="store_true")
    convert.set_defaults(run=run_convert)

    serve = commands.add_parser("serve", help="an HTTP server for OpenAI and TEI clients: embeddings, labels, "
                                "reranking, with dynamic batching (needs the serve extra)")
    common(serve, texts=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                       "only; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on, 0 for any free one (default: 8080)")
    serve.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every route but /health "
                       "(default: $BERTNP_API_KEY, which keeps the key out of the process list)")
    serve.add_argument("--labels", help="comma-separated labels: /predict classifies zero-shot with a model that has "
                       "no classifier head (or renames a classifier's labels)")
    serve.add_argument("--served-model-name", help="the model name in answers (default: the folder's name)")
    serve.add_argument("--max-batch-tokens", type=int, help="tokens in one forward pass, summed over its texts "
                       "(default: 16384)")
    serve.add_argument("--max-batch-requests", type=int, help="requests sharing one forward pass (default: as many "
                       "as fit; 1 turns batching across requests off)")
    serve.add_argument("--max-wait-ms", type=float, help="how long an idle model waits for more requests before "
                       "it starts a batch (default: 0; requests that arrive during a forward pass join the next)")
    serve.add_argument("--max-queue", type=int, help="texts waiting for the model; a request beyond it gets 429 "
                       "(default: 8192)")
    serve.add_argument("--max-inputs", type=int, help="texts in one request; more gets 413 (default: 2048)")
    serve.add_argument("--max-body-bytes", type=int, help="request body size; larger gets 413 (default: 8388608)")
    serve.add_argument("--backend", choices=["numpy", "numba"], default=None)
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info")
    serve.set_defaults(run=run_serve)
    return parser


# ---- options -------------------------------------------------------------------------------------------


def output_path(extensions):
    """An argparse type: the output's format follows its extension, and an unknown one is a usage error
    (it would otherwise be written as JSONL under a misleading name)."""

    def check(path):
        if os.path.splitext(path)[1].lower() not in extensions:
            raise argparse.ArgumentTypeError(f"{path!r}: expected a file ending in {', '.join(extensions)}")
        return path

    return check


def top_k_option(value):
    """--top-k N or --top-k all: what Classifier.classify(top_k=N) or (top_k=None) returns. N is checked
    by the API's rule (a positive integer, else InputError), so the command and Python agree."""
    if value.lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected an integer, or all") from None


def input_kind(path) -> str:
    extension = os.path.splitext(path)[1].lower()
    return extension[1:] if extension in (".csv", ".jsonl") else "txt"


def check_text_options(args):
    """Input options that cannot work together, refused before the model loads. Sets args.pairs when
    --pair-field or --pair-column asks for pairs."""
    if args.texts and args.input is not None:
        raise UsageError("give texts as arguments or with --input, not both")
    kind = input_kind(args.input) if args.input is not None else "txt"
    if args.pair_field is not None and kind != "jsonl":
        raise UsageError("--pair-field reads a .jsonl --input; for arguments, .txt or standard input use --pairs")
    if args.pair_column is not None and kind != "csv":
        raise UsageError("--pair-column reads a .csv --input; for arguments, .txt or standard input use --pairs")
    if args.pairs and kind != "txt":
        raise UsageError(f"--pairs splits lines at a TAB; a .{kind} input names its second text with "
                         f"{'--pair-field' if kind == 'jsonl' else '--pair-column'}")
    args.pairs = args.pairs or args.pair_field is not None or args.pair_column is not None


# ---- input ---------------------------------------------------------------------------------------------


def read_texts(args):
    """Yield (where, item): item is a text, or a (text, text) pair when args.pairs; where names the
    argument, or the file and line, for error messages."""
    if args.texts:
        for i, text in enumerate(args.texts, 1):
            yield f"argument {i}", _pair(text, f"argument {i}") if args.pairs else text
        return
    if args.input is None:
        for i, line in decoded_lines(sys.stdin.buffer, "<stdin>"):
            text = line.rstrip("\r\n")
            yield f"<stdin>:{i}", _pair(text, f"<stdin>:{i}") if args.pairs else text
        return
    path, kind = args.input, input_kind(args.input)
    with open(path, "rb") as f:
        lines = decoded_lines(f, path)
        if kind == "csv":
            reader = csv.DictReader(line for _, line in lines)
            for name in (args.column, args.pair_column):
                if name is not None and (reader.fieldnames is None or name not in reader.fieldnames):
                    raise InputError(f"{path}: no column {name!r} (columns: {reader.fieldnames})")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                text = _text(row.get(args.column), where, f"column {args.column!r}")
                if args.pair_column is not None:
                    text = (text, _text(row.get(args.pair_column), where, f"column {args.pair_column!r}"))
                yield where, text
        elif kind == "jsonl":
            for i, line in lines:
                if not line.strip():
                    continue
                where = f"{path}:{i}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{where}: not valid JSON ({e.msg})") from None
                for name in (args.field, args.pair_field):
                    if name is not None and (not isinstance(record, dict) or name not in record):
                        raise InputError(f"{where}: no field {name!r}")
                text = _text(record[args.field], where, f"field {args.field!r}")
                if args.pair_field is not None:
                    text = (text, _text(record[args.pair_field], where, f"field {args.pair_field!r}"))
                yield where, text
        else:
            for i, line in lines:
                text = line.rstrip("\r\n")
                yield f"{path}:{i}", _pair(text, f"{path}:{i}") if args.pairs else text


def decoded_lines(stream, name):
    """(line number, line with its ending) of a binary stream, decoded as UTF-8 (a byte-order mark at the
    start is dropped). A line that is not UTF-8 raises InputError naming it, after the lines before it."""
    for number, raw in enumerate(stream, 1):
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{name}:{number}: not valid UTF-8 (byte {raw[e.start]:#04x} at byte {e.start + 1} "
                             "of the line)") from None


def _text(value, where, what):
    if not isinstance(value, str):
        raise InputError(f"{where}: {what} is {'missing' if value is None else type(value).__name__}, expected a string")
    return value


def _pair(line, where):
    text, tab, pair = line.partition("\t")
    if not tab:
        raise InputError(f"{where}: no TAB: with --pairs each line is TEXT<TAB>TEXT")
    return text, pair


def chunks(items):
    """Lists of up to CHUNK items. An error while reading (a bad line) first yields the items read before
    it, then raises. Ctrl-C and a closed generator stop at once: the yields are outside the try, so
    closing never meets a handler that would yield again."""
    chunk, items = [], iter(items)
    while True:
        try:
            _, item = next(items)
        except StopIteration:
            break
        except Exception:
            if chunk:
                yield chunk
            raise
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def text_fields(item) -> dict:
    """An input item as output columns: {"text"} or, for a pair, {"text", "text_pair"} (as transformers'
    text-classification pipeline names a pair's parts)."""
    return {"text": item[0], "text_pair": item[1]} if isinstance(item, tuple) else {"text": item}


def text_header(args) -> list:
    return ["text", "text_pair"] if args.pairs else ["text"]


# ---- output --------------------------------------------------------------------------------------------


class NpyRows:
    """A .npy file that grows row by row and is valid after every chunk: the header is rewritten in place
    with the row count so far (it keeps a fixed size), so an interrupted run leaves every finished row.
    width and dtype are known before the first row, so that no rows still give shape (0, width)."""

    HEADER_BYTES = 128

    def __init__(self, path, width: int, dtype):
        self.path, self.file, self.rows, self.width, self.dtype = path, open(path, "wb"), 0, width, np.dtype(dtype)
        self.file.write(self._header())
        self.file.flush()

    def _header(self) -> bytes:
        fields = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, self.width)}
        text = repr(fields).encode("latin1")
        text += b" " * (self.HEADER_BYTES - 10 - len(text) - 1) + b"\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text

    def write(self, array):
        self.file.seek(0, os.SEEK_END)
        self.file.write(np.ascontiguousarray(array, dtype=self.dtype).tobytes())
        self.rows += len(array)
        self.file.seek(0)
        self.file.write(self._header())
        self.file.flush()

    def close(self):
        self.file.close()


class Writer:
    """Rows out as they come, flushed per chunk: JSONL (default), CSV, or .npy for embeddings (given their
    width and dtype). Each chunk is written with one write call, so an interrupt leaves whole rows only."""

    def __init__(self, path, header, width: int | None = None, dtype=np.float32):
        self.path, self.header = path, header
        extension = os.path.splitext(path)[1].lower() if path else ".jsonl"
        self.kind = {".npy": "npy", ".csv": "csv"}.get(extension, "jsonl")
        if self.kind == "npy":
            if width is None:
                raise InputError(f"{path}: .npy output holds embeddings only; use .jsonl or .csv")
            self.npy, self.file = NpyRows(path, width, dtype), None
        else:
            self.file = open(path, "w", encoding="utf-8", newline="") if path else sys.stdout
        if self.kind == "csv":
            self._write_text([header])

    def _write_text(self, rows):
        if self.kind == "csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)
            text = buffer.getvalue()
        else:
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        self.file.write(text)
        self.file.flush()

    def write(self, records, arrays=None):
        if self.kind == "npy":
            self.npy.write(arrays)
        elif self.kind == "csv":
            self._write_text([[r[k] if not isinstance(r[k], (list, dict)) else json.dumps(r[k]) for k in self.header]
                              for r in records])
        else:
            self._write_text(records)

    def close(self):
        if self.kind == "npy":
            self.npy.close()
        elif self.file is not sys.stdout:
            self.file.close()


def progress_bar(args):
    if args.quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(unit="text", file=sys.stderr)


def run_chunks(args, compute, header, width=None, dtype=np.float32):
    """Read, compute and write chunk by chunk: what was written stays written if a later line is bad."""
    writer, bar = Writer(args.output, header, width, dtype), progress_bar(args)
    try:
        for chunk in chunks(read_texts(args)):
            records, arrays = compute(chunk)
            writer.write(records, arrays)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        writer.close()
        if bar is not None:
            bar.close()


# ---- commands ------------------------------------------------------------------------------------------


def run_embed(args):
    from .embedder import Embedder

    pooling = tuple(args.pooling.split(",")) if args.pooling else None
    embedder = Embedder(args.model, max_length=args.max_length, pooling=pooling, normalize=args.normalize,
                        backend=args.backend)

    def compute(items):
        vectors = embedder.embed(items, batch_size=args.batch_size)
        return [{**text_fields(t), "embedding": v.tolist()} for t, v in zip(items, vectors)], vectors

    run_chunks(args, compute, [*text_header(args), "embedding"], embedder.dimension, embedder.model.dtype)


def run_classify(args):
    from .classifier import Classifier, check_top_k

    top_k = check_top_k(args.top_k)  # before the model loads
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    classifier = Classifier(args.model, labels=labels, activation=args.activation, threshold=args.threshold,
                            max_length=args.max_length, case_sensitive=args.case_sensitive,
                            long_text=args.long_text, stride=args.stride, coalesce=args.coalesce,
                            backend=args.backend)

    def compute(items):
        results = classifier.classify(items, top_k=top_k, batch_size=args.batch_size)
        records = [{**text_fields(t), "label": r[0]["label"] if r else None, "score": r[0]["score"] if r else None,
                    "labels": r} for t, r in zip(items, results)]
        return records, None

    run_chunks(args, compute, [*text_header(args), "label", "score", "labels"])


def run_rank(args):
    """Classifier.rank(query, texts): every text is read before the ranking is written."""
    from .bert import load
    from .classifier import Classifier, check_top_k

    top_k = check_top_k(args.top_k)
    model = load(args.model, backend=args.backend)
    if model.weights.classifier is None:
        raise InputError(f"{model.folder}: rank needs a cross-encoder (a sequence-classification checkpoint); "
                         f"this one is a {model.architecture}")
    classifier = Classifier(model, max_length=args.max_length, case_sensitive=args.case_sensitive)
    documents = [text for _, text in read_texts(args)]
    writer = Writer(args.output, ["index", "score", "text"])
    try:
        writer.write(classifier.rank(args.query, documents, top_k=top_k, batch_size=args.batch_size))
    finally:
        writer.close()


def run_ner(args):
    from .pipelines import TokenClassifier

    ignore = [label.strip() for label in args.ignore_labels.split(",") if label.strip()]
    ner = TokenClassifier(args.model, aggregation=args.aggregation, ignore_labels=ignore, stride=args.stride,
                          max_length=args.max_length, batch_size=args.batch_size, backend=args.backend)

    def compute(texts):
        return [{"text": t, "entities": e} for t, e in zip(texts, ner(texts))], None

    run_chunks(args, compute, ["text", "entities"])


def run_qa(args):
    from .pipelines import QuestionAnswerer

    if (args.context is None) == (args.context_file is None):
        raise InputError("give the context with --context TEXT or --context-file FILE (one of them)")
    context = args.context
    if args.context_file is not None:
        with open(args.context_file, encoding="utf-8") as f:
            context = f.read()
    qa = QuestionAnswerer(args.model, max_seq_len=args.max_length, batch_size=args.batch_size, backend=args.backend)

    def compute(questions):
        results = qa.answer(questions, context, top_k=args.top_k, max_answer_len=args.max_answer_len,
                            doc_stride=args.doc_stride)
        records = []
        for question, answers in zip(questions, results):
            answers = answers if isinstance(answers, list) else [answers]
            best = answers[0] if answers else {}
            records.append({"question": question, "answer": best.get("answer"), "score": best.get("score"),
                            "start": best.get("start"), "end": best.get("end"), "answers": answers})
        return records, None

    run_chunks(args, compute, ["question", "answer", "score", "start", "end", "answers"])


def run_fill_mask(args):
    from .pipelines import FillMask

    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    fill = FillMask(args.model, max_length=args.max_length, batch_size=args.batch_size, backend=args.backend)

    def compute(texts):
        records = []
        for text, proposals in zip(texts, fill(texts, top_k=args.top_k, targets=targets)):
            best = proposals[0] if isinstance(proposals[0], dict) else proposals[0][0]  # one mask, or several
            records.append({"text": text, "token_str": best["token_str"], "score": best["score"],
                            "sequence": best["sequence"], "predictions": proposals})
        return records, None

    run_chunks(args, compute, ["text", "token_str", "score", "sequence", "predictions"])


def run_info(args):
    report = inspect_model(args.model)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for key, value in report.items():
            if key != "problems":
                print(f"{key:>22}: {value}")
        for problem in report["problems"]:
            print(f"{'warning':>22}: {problem}")
    return 1 if report["problems"] else 0


def inspect_model(name) -> dict:
    """What a folder holds and whether config, weights and tokenizer agree."""
    from .bert import load
    from .weights import FAMILY_NAMES

    model = load(name, backend="numpy")
    cfg, folder = model.config, model.folder
    problems = []
    report = {
        "folder": folder,
        "files": ", ".join(sorted(os.listdir(folder))),
        "architecture": model.architecture,
        "model class": model.weights.model_class,
        "family": f"{FAMILY_NAMES[cfg.family]} (model_type {cfg.model_type})",
        "layers": cfg.num_hidden_layers,
        "hidden size": cfg.hidden_size,
        "heads": cfg.num_attention_heads,
        "intermediate size": cfg.intermediate_size,
        "activation": cfg.hidden_act,
        "position embeddings": f"{cfg.position_embedding_type}, {cfg.max_position_embeddings} positions" + (
            f", counted from pad_token_id + 1 = {cfg.pad_token_id + 1}" if cfg.family == "roberta" else ""),
        "token types": cfg.type_vocab_size or "none",
        "vocabulary": cfg.vocab_size,
        "pooler": "yes" if model.weights.pooler is not None else "no (pooler_output is None)",
        "labels": model.labels,
        "tokenizer": model.tokenizer.source if model.tokenizer else model._tokenizer_error,
        "max length": model.max_length,
    }
    if cfg.embedding_size is not None:
        report["embedding size"] = cfg.embedding_size
    if cfg.family == "albert":
        report["layer groups"] = (f"{cfg.num_hidden_groups} of {cfg.inner_group_num} layer(s), shared by "
                                  f"{cfg.num_hidden_layers} layers")
    head = model.weights.labels_head  # a sequence or token classifier
    if head is not None and len(cfg.id2label) != head.weight.shape[0]:
        problems.append(f"id2label has {len(cfg.id2label)} labels, classifier has {head.weight.shape[0]} rows")
    if model.tokenizer is not None:
        vocab = model.tokenizer.backend.get_vocab()
        if len(vocab) != cfg.vocab_size:
            problems.append(f"tokenizer vocabulary has {len(vocab)} tokens, config vocab_size is {cfg.vocab_size}")
        if max(vocab.values()) >= cfg.vocab_size:
            problems.append(f"tokenizer produces ids up to {max(vocab.values())}, beyond vocab_size {cfg.vocab_size}")
        cased_tokens = sum(1 for t in vocab if t[:1].isupper() and not t.startswith("["))
        lowercase = _lowercases(model.tokenizer.backend)
        report["lower-cases text"] = lowercase
        if lowercase and cased_tokens > 0.05 * len(vocab):
            problems.append(f"the tokenizer lower-cases, but {cased_tokens} vocabulary tokens are capitalised (a cased model?)")
        if lowercase is False and cased_tokens == 0:
            problems.append("the tokenizer keeps case, but the vocabulary has no capitalised token (an uncased model?)")
        if model.tokenizer.model_max_length and model.tokenizer.model_max_length > cfg.max_tokens:
            problems.append(f"tokenizer model_max_length {model.tokenizer.model_max_length} exceeds "
                            f"{cfg.max_tokens_name} {cfg.max_tokens}")
    report["problems"] = problems
    return report


def _lowercases(backend):
    try:
        normalizer = json.loads(backend.to_str()).get("normalizer") or {}
    except ValueError:
        return None
    steps = normalizer.get("normalizers", [normalizer])
    return any(s.get("lowercase") or s.get("type") == "Lowercase" for s in steps)


def run_parity(args):
    from . import parity
    from .bert import load

    texts = parity.TEXTS
    if args.texts_file:
        with open(args.texts_file, encoding="utf-8") as f:
            texts = [tuple(line.rstrip("\n").split("\t", 1)) if "\t" in line else line.rstrip("\n") for line in f]
    model = load(args.model, dtype=args.dtype, backend=args.backend)
    enc = model.tokenize(texts, max_length=min(128, model.max_length))
    layers = len(model.weights.layers)  # layers run: ALBERT runs its shared ones several times
    if args.against.startswith("onnx:") and "token_type_ids" not in parity.onnx_input_names(args.against[5:]):
        enc["token_type_ids"][:] = 0  # the graph takes none: both engines then see token type 0 everywhere
        print("note: the ONNX graph has no token_type_ids input; comparing with token type 0 everywhere",
              file=sys.stderr)
    ours = parity.trace_bertnp(model, enc)
    if args.against == "transformers":
        other, theirs = "transformers", parity.trace_transformers(model.folder, enc, model.dtype,
                                                                       model.weights.classifier is not None)
    elif args.against.startswith("onnx:"):
        other, (theirs, mapping) = "onnxruntime", parity.trace_onnx(args.against[5:], enc, ours, layers, args.layers)
        print("note: graph outputs compared by shape: " + ", ".join(
            f"{output} as {name or '(not compared)'}" for output, name in mapping.items()), file=sys.stderr)
    else:
        raise InputError(f"--against {args.against!r}: expected transformers or onnx:FILE")
    if args.truth:
        truth = parity.trace_bertnp(load(args.model, dtype="float64", backend="numpy"), enc)
        columns = {f"bertnp {args.dtype} vs float64 truth": parity.compare_traces(ours, truth, enc["attention_mask"], layers, args.atol, args.rtol),
                   f"{other} {args.dtype} vs float64 truth": parity.compare_traces(theirs, truth, enc["attention_mask"], layers, args.atol, args.rtol)}
    else:
        columns = {f"bertnp vs {other} ({args.dtype})": parity.compare_traces(ours, theirs, enc["attention_mask"], layers, args.atol, args.rtol)}
    print(parity.format_table(columns, args.atol, args.rtol))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(parity.to_json(columns))
    if args.plot:
        from .pictures import plot_errors

        plot_errors(columns, args.plot)
    if args.explain:
        print(f"\nwhich arithmetic explains the difference (bertnp float32 under each switch vs {other}'s "
              f"{parity.explained_output(theirs, layers)}):")
        for label, error in parity.explain(model.folder, enc, theirs, layers):
            print(f"  {error:9.2e}  {label}")
    over = [name for rows in columns.values() for name in parity.outputs_over(rows, layers)]
    if over:
        print(f"over tolerance: {', '.join(sorted(set(over)))}", file=sys.stderr)
        return 1
    return 0


def run_explain(args):
    from .bert import load
    from .pictures import plot_attention

    rows, columns = plot_attention(load(args.model), args.text, args.out, args.layer, args.head)
    print(f"wrote {args.out}: {rows} layer(s) x {columns} head(s)", file=sys.stderr)


def run_convert(args):
    from .torch_checkpoint import convert

    convert(args.source, args.destination)
    print(f"wrote {args.destination}", file=sys.stderr)


def run_serve(args):
    """bertnp serve: the model behind HTTP until SIGTERM (exit 0) or Ctrl-C (130)."""
    try:
        from .serve.limits import Options
        from .serve.server import run
    except ImportError as e:
        print(f"bertnp serve: error: {e.name} is not installed: pip install 'bertnp[serve]'", file=sys.stderr)
        return 1
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: expected 0 to 65535")
    key = args.api_key if args.api_key is not None else os.environ.get("BERTNP_API_KEY") or None
    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip()) if args.labels else None
    limits = {name: getattr(args, name) for name in ("max_batch_tokens", "max_batch_requests", "max_wait_ms",
                                                     "max_queue", "max_inputs", "max_body_bytes")
              if getattr(args, name) is not None}
    try:
        options = Options(api_key=key, labels=labels, served_model_name=args.served_model_name, **limits)
    except InputError as e:
        raise UsageError(str(e)) from None
    from .bert import load

    return run(load(args.model, backend=args.backend), options, args.host, args.port, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
