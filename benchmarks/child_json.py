"""Run a benchmark's measurement in a child process of its own (so its peak memory is its
own) and read the JSON of its last stdout line."""
import json
import os
import subprocess
import sys


def run_json(script, args, label):
    """`python script *args` with warnings silenced; the parsed last line of its stdout, or
    exit naming `label` with the end of its stderr when it fails."""
    out = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if out.returncode:
        sys.exit(f'{label} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])
