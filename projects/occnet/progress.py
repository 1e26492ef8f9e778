"""One progress line with an ETA for long command-line work (data tools, evaluation)."""
import sys
import time


class Progress:
    """Callable `progress(done, total)` printing `[tool] what done/total | detail | elapsed |
    eta` to stderr, overwriting itself, at most every `every_s` seconds and once at the end.

    Args:
        tool: the bracketed prefix, e.g. 'collect'.
        what: what is counted, e.g. 'logs'.
        format_amount: str() of done / total (e.g. to print bytes as GiB).
        detail: optional callable returning extra text (e.g. problems found so far).
    """

    def __init__(self, tool, what, format_amount=str, detail=None, every_s=2.0):
        self.tool, self.what, self.format_amount, self.detail = tool, what, format_amount, detail
        self.every_s = every_s
        self.start = self.last = time.time()

    def __call__(self, done, total):
        now = time.time()
        if done < total and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / max(done, 1e-9) * max(total - done, 0)
        detail = f' | {self.detail()}' if self.detail else ''
        print(f'\r[{self.tool}] {self.what} {self.format_amount(done)}/'
              f'{self.format_amount(total)}{detail} | elapsed {elapsed:.0f} s | eta {eta:.0f} s',
              end='\n' if done >= total else '', file=sys.stderr, flush=True)
