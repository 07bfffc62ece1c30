"""Varied real texts for parity tests."""

TEXTS = [
    "Microsoft has taken its first step into the metaverse.",
    "Hello",
    "",
    "Café naïve résumé, déjà vu — Zürich's Ørsted façade.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Emoji test 😀🚀🔥 and symbols ©®™ € £ ¥ ±≠≤≥",
    "ALL CAPS AND MiXeD cAsE with numbers 3.14159 and 1,000,000.",
    "Tabs\tand\nnewlines   and    spaces.",
    " ".join(["This very long input keeps going to test truncation at the maximum length."] * 60),
    "Stocks fell sharply on Monday as investors weighed new inflation data and central bank comments.",
]

PAIRS = [
    ("Who won the game?", "The home team won on Sunday by three points."),
    ("What is the capital of Japan?", "東京は日本の首都です。"),
    ("short", " ".join(["a long passage that must be truncated longest first"] * 80)),
]
