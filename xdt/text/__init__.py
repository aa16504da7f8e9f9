"""Item-text encoders for the cross-domain bridge: pretrained (through keras-hub), hashed, cached.

`xdt.text.sentence_encoder` imports Keras (and keras-hub when a folder is loaded); import it
directly where a pretrained encoder is used, so that `import xdt.text` stays light and works
without the optional `hub` extra. `xdt.text.folder` checks a folder without either.
"""
