"""Go's behaviour where Ollama's users can see it: `text/template`, `encoding/json` output and
decoding errors, `time.Duration` and `strconv` forms. Leaf modules: nothing here imports the rest
of trio-ollama.
"""
