"""The baseline: a plain Gradio chat written the way the lessons teach.

requests + `iter_lines` in a sync generator, yielding the reply after every token, default
`gr.ChatInterface` settings (one event at a time). The load benchmark runs the same
scenarios against this and against `app.py`, in the same run, and prints the ratios.
Run: `OLLAMA_HOST=http://127.0.0.1:11434 python bench/baseline_app.py --port 7861`.
"""

import argparse
import json
import os

import gradio as gr
import requests

OLLAMA_HOST = os.getenv("OLLAMA_HOST", "http://127.0.0.1:11434")
MODELS = os.getenv("MODELS", "bench").split(",")


def chat(message, history, model):
    messages = [{"role": m["role"], "content": m["content"]} for m in history] + [{"role": "user", "content": message}]
    response = requests.post(
        f"{OLLAMA_HOST}/api/chat", json={"model": model, "messages": messages, "stream": True}, stream=True
    )
    reply = ""
    for line in response.iter_lines():
        if line:
            part = json.loads(line)
            reply += part.get("message", {}).get("content", "")
            yield reply


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()
    model = gr.Radio(MODELS, value=MODELS[0], label="Model")
    gr.ChatInterface(chat, additional_inputs=[model], api_name="chat").launch(server_port=args.port)
