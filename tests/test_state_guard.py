"""The guard every test runs under (tests/conftest.py) notices what a test leaves changed."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading

import pytest
from conftest import process_kept, state_kept

from llmstream import chat
from llmstream.web import gradio_tuning


def test_a_changed_environment_variable_is_named():
    with pytest.raises(AssertionError, match=r"environment \(LLMSTREAM_LEFT_BEHIND\)"), state_kept():
        os.environ["LLMSTREAM_LEFT_BEHIND"] = "1"
    del os.environ["LLMSTREAM_LEFT_BEHIND"]


def test_a_filter_left_on_a_logger_is_named():
    logger, log_filter = logging.getLogger("llmstream"), logging.Filter("elsewhere")
    with pytest.raises(AssertionError, match="logger 'llmstream'"), state_kept():
        logger.addFilter(log_filter)
    logger.removeFilter(log_filter)


def test_exception_hooks_frozen_objects_gradio_patches_and_streams_are_checked():
    hook = sys.excepthook
    with pytest.raises(AssertionError, match="exception hooks"), state_kept():
        sys.excepthook = lambda *args: None
    sys.excepthook = hook
    with pytest.raises(AssertionError, match=r"frozen objects \(gc.freeze\)"), state_kept():
        gc.freeze()
    gc.unfreeze()
    with pytest.raises(AssertionError, match="Gradio patches"), state_kept():
        gradio_tuning.quick_state_updates()
    gradio_tuning.undo()
    with pytest.raises(AssertionError, match=r"streams in flight"), state_kept():
        chat._Flow.active += 1
    chat._Flow.active -= 1


def test_a_test_that_puts_everything_back_passes():
    with state_kept():
        os.environ["LLMSTREAM_LEFT_BEHIND"] = "1"
        del os.environ["LLMSTREAM_LEFT_BEHIND"]
        threading.excepthook = threading.excepthook


def test_process_kept_restores_the_environment_and_loggers():
    logger = logging.getLogger("uvicorn.error")
    with state_kept(), process_kept():
        os.environ["LLMSTREAM_LEFT_BEHIND"] = "1"
        logger.setLevel(logging.CRITICAL)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
