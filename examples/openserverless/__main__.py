#--web true
#--kind python:3.11
#--param OLLAMA_HOST $OLLAMA_HOST
#--param AUTH $AUTH
"""The course's streaming chat action, on llmstream: deploy with `ops ide deploy`.

The `#--param` lines pass the secrets from your OpenServerless configuration into `args`;
`llmstream` reads them from there (then the environment, then `.env`), streams each piece
of the answer to `STREAM_HOST:STREAM_PORT` and returns the whole answer.
"""

from llmstream.lesson.action import main as stream_answer


def main(args):
    return stream_answer(args)
