"""The embedded engine: llama.cpp in this process, many chats batched into one decode, the
bundled model or one from the Hugging Face Hub, on a build that runs on this CPU.
"""
