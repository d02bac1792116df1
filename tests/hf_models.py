"""Tiny random-weight Hugging Face models built offline from config classes (test helpers)."""
import torch


def _ids(vocab, seed=0, shape=(2, 9)):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def build(name: str, seed: int = 0):
    """``(model, example_inputs)`` for a tiny random model of the named architecture.

    ``NAME-eager``: the same model with eager attention (matmul, softmax, matmul) instead of sdpa.
    """
    import transformers as T
    if name.endswith("-eager"):
        model, inp = build(name[:-len("-eager")], seed)
        cfg = model.config
        cfg._attn_implementation = "eager"
        torch.manual_seed(seed)
        return type(model)(cfg).eval(), inp
    torch.manual_seed(seed)
    if name == "bert":
        cfg = T.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=32, num_labels=3)
        m = T.BertForSequenceClassification(cfg)
        ids = _ids(120, seed)
        mask = torch.ones_like(ids)
        mask[1, -3:] = 0
        return m.eval(), {"input_ids": ids, "attention_mask": mask}
    if name == "gpt2":
        cfg = T.GPT2Config(vocab_size=120, n_embd=32, n_layer=2, n_head=4, n_positions=32)
        return T.GPT2LMHeadModel(cfg).eval(), {"input_ids": _ids(120, seed), "use_cache": False}
    if name == "llama":
        cfg = T.LlamaConfig(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
        return T.LlamaForCausalLM(cfg).eval(), {"input_ids": _ids(120, seed), "use_cache": False}
    if name == "vit":
        cfg = T.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          image_size=16, patch_size=4, num_labels=3)
        g = torch.Generator().manual_seed(seed)
        return T.ViTForImageClassification(cfg).eval(), {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}
    if name == "convnext":
        cfg = T.ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=3, image_size=32)
        g = torch.Generator().manual_seed(seed)
        return T.ConvNextForImageClassification(cfg).eval(), {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    g = torch.Generator().manual_seed(seed)
    if name == "distilbert":
        cfg = T.DistilBertConfig(vocab_size=120, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                 max_position_embeddings=32)
        return T.DistilBertForSequenceClassification(cfg).eval(), {"input_ids": _ids(120, seed)}
    if name == "qwen2":
        cfg = T.Qwen2Config(vocab_size=120, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                            num_attention_heads=4, num_key_value_heads=2)
        return T.Qwen2ForCausalLM(cfg).eval(), {"input_ids": _ids(120, seed), "use_cache": False}
    if name == "resnet":
        cfg = T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
        return T.ResNetForImageClassification(cfg).eval(), {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    if name == "mobilenetv2":
        cfg = T.MobileNetV2Config(image_size=32, depth_multiplier=0.35, num_labels=3)
        return T.MobileNetV2ForImageClassification(cfg).eval(), {
            "pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    if name == "swin":
        cfg = T.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                           window_size=4, num_labels=3)
        return T.SwinForImageClassification(cfg).eval(), {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    raise KeyError(name)


NAMES = ["bert", "gpt2", "llama", "vit", "convnext"]
#: further architectures checked for exactness only (random permutations of every free group)
EXTRA = ["distilbert", "qwen2", "resnet", "mobilenetv2", "swin", "bert-eager", "llama-eager"]
