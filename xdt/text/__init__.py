"""Item-text encoders for the cross-domain bridge: pretrained BERT, hashed, cached.

`xdt.text.bert` imports Keras; import it directly where a pretrained encoder is used, so that
`import xdt.text` stays light and works without the optional `text` extra.
"""
