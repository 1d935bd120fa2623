"""`python app.py`: the chat in the browser (a Hugging Face Space runs this file).

The same as the `llmstream-app` command; the app itself is `llmstream/web/app.py`.
"""

from llmstream.web.app import create, launch, main

__all__ = ["create", "launch", "main"]

if __name__ == "__main__":
    main()
