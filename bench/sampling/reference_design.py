"""A re-creation of the reference's sampling design for bench/sampling: a process pool of 32,
`requests`, one question per worker, the four role assignments in sequence, no memo. The
dialogue follows the reference's agent.py (docs/sampling.md) with the standard prompt set's wording (the same calls the
Swift stage makes, before memoisation)."""
import json, multiprocessing, re, sys, time
import requests

URL = sys.argv[1]
QUESTIONS = [json.loads(l) for l in open(sys.argv[2])][: int(sys.argv[3])]
BUDGET = 3
D = "prompts/standard/"
T = {k: open(D + k + ".txt").read() for k in ["student_think", "student_summarize", "teacher_think", "teacher_summarize"]}
S = json.load(open(D + "sentences.json"))
THOUGHT = re.compile(r'(?<!\w)Thought:\s*(.*?)(?:\n\s*Action:|$)', re.I | re.S)
ACTION = re.compile(r'(?<!\w)Action:\s*(.*)', re.I | re.S)
SUMMARY = re.compile(r'^\s*Summary\s*:\s*(.*?)(?=^\s*\w+\s*:|\Z)', re.I | re.S | re.M)
session = None

def call(model, prompt):
    r = session.post(URL + "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": prompt}],
                                                       "temperature": 0, "top_p": 1, "max_tokens": 256, "seed": 43})
    return r.json()["choices"][0]["message"]["content"].strip()

def think(reply):
    t, a = THOUGHT.search(reply), ACTION.search(reply)
    if not t or not a:
        return S["invalid_thought"], S["invalid_action"]
    action = a.group(1).strip()
    return t.group(1).strip(), action[: action.index("]") + 1] if "]" in action else action

def summary(reply, previous):
    m = SUMMARY.search(reply)
    return m.group(1).strip() if m else S["summary_failed"] + previous

def retrieve(entity, paragraphs):
    words = set(entity.lower().split())
    return max(paragraphs, key=lambda p: len(words & set(p.lower().split())))

def dialogue(q, teacher, student):
    paragraphs = ["".join(s) for _, s in q["context"]]
    sc = tc = S["no_context"]
    ls = lt = None
    for t in range(BUDGET + 1):
        stop = t >= BUDGET
        obs = S["start_observation"] if ls is None else S["student_observation"].format(student=" ".join(ls), teacher=" ".join(lt))
        thought, action = think(call(student, T["student_think"].format(context=sc, question=q["question"], observation=obs,
                                                                          budget=S["must_finish" if stop else "may_search"])))
        if stop or action.startswith("Finish"):
            return action[7:-1] if action.startswith("Finish") else ""
        message = retrieve(action[7:-1], paragraphs) if action.startswith("Search") else S["cant_parse"].format(action=action)
        ls = (action, message)
        sc = summary(call(student, T["student_summarize"].format(question=q["question"], context=sc, observation=obs, thought=thought, action=action)), sc)
        tobs = S["teacher_first_observation"].format(student=" ".join(ls)) if lt is None else S["teacher_observation"].format(teacher=" ".join(lt), student=" ".join(ls))
        advice, verdict = think(call(teacher, T["teacher_think"].format(context=tc, question=q["question"], observation=tobs)))
        lt = (verdict, advice)
        tc = summary(call(teacher, T["teacher_summarize"].format(question=q["question"], context=tc, observation=tobs, thought=advice, action=verdict)), tc)

def init():
    global session
    session = requests.Session()

def work(q):
    models = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"]
    return [dialogue(q, models[a >> 1], models[a & 1]) for a in range(4)]

if __name__ == "__main__":
    with multiprocessing.Pool(32, initializer=init) as pool:
        answers = pool.map(work, QUESTIONS, chunksize=1)
    print(sum(len(a) for a in answers), "dialogues")
