#!/usr/bin/env python3
"""Runs the reference's rl_batch.py as it is, recording when each training question ends:

    python3 bench/gpu/ref_timed.py TIMES.jsonl JOINT_RL_DIR [rl_batch.py's arguments...]

Changes nothing in the reference: before rl_batch.py runs (as __main__, from JOINT_RL_DIR, as
`cd joint_rl && python rl_batch.py` would), `tqdm.tqdm` is wrapped so that its "Training" loop
writes a line {"event", "t"} (time.monotonic()) when the loop starts handing out questions and
after each one; the differences are the seconds of each training question (routing, the
generators, both candidates loaded, the dialogue, the backward, the optimiser steps).
When `requests` is not installed (the GPU machine has no network to install it), the
bench's minimal stand-in in bench/gpu/ref_shims is put on the path (a POST with a JSON body
to the local retriever, which is all the reference asks of it).
"""
import json
import os
import runpy
import sys
import time

times_path, joint_rl = sys.argv[1], os.path.abspath(sys.argv[2])
try:
    import requests  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref_shims"))

import tqdm as tqdm_module

Base = tqdm_module.tqdm
log = open(times_path, "a", buffering=1)


def mark(event, **fields):
    log.write(json.dumps(dict(event=event, t=time.monotonic(), wall=time.time(), **fields)) + "\n")


class TimedTqdm(Base):
    def __iter__(self):
        if self.desc.startswith("Training"):
            mark("start")
            for i, item in enumerate(Base.__iter__(self)):
                yield item
                mark("question", index=i)
        else:
            yield from Base.__iter__(self)


tqdm_module.tqdm = TimedTqdm
os.chdir(joint_rl)
sys.path.insert(0, joint_rl)
sys.argv = [os.path.join(joint_rl, "rl_batch.py")] + sys.argv[3:]
mark("launch")
runpy.run_path(sys.argv[0], run_name="__main__")
mark("end")
