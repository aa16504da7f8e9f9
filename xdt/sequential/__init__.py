"""Sequential cross-domain models: a causal sequence transformer and a pretrained text bridge.

Nothing here is imported by `import xdt.sequential` (TensorFlow stays unloaded); import the
submodules. Tokens, views and examples (`xdt.sequential.data`):

    vocabulary = ItemVocabulary(dataset.n_items("source"), dataset.n_items("target"))
    # or: interactions, vocabulary = interactions_from_domains(source_frame, target_frame)
    sequences = user_sequences(interactions, vocabulary, domains=("source",), splits=("train",))
    examples = training_examples(sequences, vocabulary, max_length=50, label_domains=("source",))
    held_out = evaluation_examples(interactions, vocabulary, split="test", max_length=50,
                                   domain="target", history_domains=("source", "target"))

Pretrain on source sequences → save:

    model = SequenceTransformer(vocabulary.size, max_length=50, width=64, layers=2, heads=2)
    # text bridge instead: texts = item_texts(vocabulary, dataset.items("source"), dataset.items("target"))
    #   text = encode_texts(texts, cache_dir=..., encoder_dir=HF_FOLDER_OR_None)
    #   model = build_text_bridge(text.embeddings, max_length=50, width=64, layers=2, heads=2)
    history = train_next_item(model, examples, vocabulary, candidate_domain="source",
                              settings=TrainingSettings(epochs=10, loss="sampled"),
                              validate=None, checkpoint_dir=run / "checkpoints" / "pretrain")
    model.save(run / "source_model.keras")

Fine-tune on target → save (same vocabulary; the freeze schedule keeps e.g. the blocks fixed
for the first epochs):

    model = keras.saving.load_model(run / "source_model.keras")
    target = training_examples(user_sequences(interactions, vocabulary, domains=("source", "target")),
                               vocabulary, max_length=50, label_domains=("target",))
    valid = evaluation_examples(interactions, vocabulary, split="valid", max_length=50)
    train_next_item(model, target, vocabulary, candidate_domain="target",
                    settings=TrainingSettings(freeze=("blocks", "positions"), freeze_epochs=2),
                    validate=lambda m: mean_metrics(evaluate_next_item(m, valid, vocabulary))["ndcg@10"],
                    checkpoint_dir=...)
    model.save(run / "target_model.keras")

Evaluate → per-user frame (user, cohort, rank, ndcg@10, recall@10, hr@10, precision@10, mrr):

    per_user = evaluate_next_item(model, evaluation_examples(..., split="test"), vocabulary, ks=(10,))

Cold or brand-new items: `evaluate_next_item(..., candidates=ITEMS)` or
`item_vectors=model.text_item_vectors(new_text_embeddings)`.

Objectives: `loss="full"` (softmax over every item of the domain; the default to reach for when
`positions × items × width` fits, e.g. 27k Kitchen items at width 64 on a CPU) or `"sampled"`
(uniform, or in-batch negatives with the logQ correction). `xdt run` with `task: sequential`
drives all of this from a config (`experiment.run_sequential_experiment`).

Modules: `data` (sequences), `transformer` (`SequenceTransformer`, `parameter_count`),
`text_bridge` (`TextAdaptor`, `item_texts`, `encode_texts`, `build_text_bridge`), `training`
(`TrainingSettings`, `train_next_item`, `seed_everything`), `evaluation` (`evaluate_next_item`,
`rank_next_items`, `mean_metrics`), `experiment` (`run_sequential_experiment`, and
`evaluate_sequential_run` for `xdt evaluate`), `recommendation` (`next_item_scorer` for `xdt recommend`).
"""
