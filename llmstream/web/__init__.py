"""The Gradio app and its page: the one layer, with `serve`, that imports Gradio.

`import llmstream` never loads it; `python app.py` and `llmstream-app` do.
"""
