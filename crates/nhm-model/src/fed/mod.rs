//! The client side of federated training: one person's samples, local training against the
//! relayed negatives, and the update and hashmap sent back. [`simulate`] runs many clients
//! through the same [`nhm_fed::Coordinator`] the service runs.

mod simulate;

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Tensor, TensorData};
use nhm_data::augment::{augment, AugmentConfig};
use nhm_data::input::InputSpec;
use nhm_data::GrayImage;
use nhm_fed::{ClientUpdate, Task, Weights};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use simulate::{simulate, SimConfig, SimOutcome, SimRound};

use crate::encoder::{check_apply, check_size};
use crate::net::EncoderNet;
use crate::{compute_device, Encoder, EncoderConfig, Error, Result};

/// The client's loss on its own embeddings `e` and the relayed negatives `n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FedLoss {
    /// The seed's loss (Hadsell et al. 2006): mean `‖eᵢ − eⱼ‖²` over the client's own pairs plus
    /// mean `max(0, margin − ‖eᵢ − nⱼ‖)²` over own × relayed pairs.
    Contrastive {
        /// Distance beyond which a negative no longer pushes.
        margin: f32,
    },
    /// Softmax over cosines (supervised contrastive, Khosla et al. 2020): each own sample must
    /// pick its other own samples out of them and the relayed negatives, at `temperature`.
    Softmax {
        /// Softmax temperature.
        temperature: f32,
    },
    /// Proxy softmax (normalised softmax with fixed class weights, as in FedAwS): each own
    /// sample must pick the client's own hashmap as the coordinator holds it out of it and the
    /// relayed negatives, at `temperature`. Without an own hashmap in the task, [`Self::Softmax`].
    Proxy {
        /// Softmax temperature.
        temperature: f32,
    },
}

/// How a client trains locally in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// SGD steps per round, each on every own sample (augmented).
    pub steps: usize,
    /// SGD learning rate.
    pub learning_rate: f64,
    /// The loss.
    pub loss: FedLoss,
    /// Augment each step's images (`nhm_data::augment`, default strengths, no flips).
    pub augment: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            steps: 2,
            learning_rate: 0.05,
            loss: FedLoss::Softmax { temperature: 0.1 },
            augment: true,
        }
    }
}

impl LocalConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid("steps", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid(
                "learning_rate",
                format!("{} is not positive", self.learning_rate),
            ));
        }
        let ok = match self.loss {
            FedLoss::Contrastive { margin } => margin.is_finite() && margin > 0.0,
            FedLoss::Softmax { temperature } | FedLoss::Proxy { temperature } => {
                temperature.is_finite() && temperature > 0.0
            }
        };
        if !ok {
            return Err(Error::invalid(
                "loss",
                format!("{:?}: margin or temperature must be positive", self.loss),
            ));
        }
        Ok(())
    }
}

/// An encoder's weights as the federated protocol ships them.
pub fn encoder_weights(enc: &Encoder) -> Result<Weights> {
    net_weights(enc.net())
}

fn net_weights(net: &EncoderNet) -> Result<Weights> {
    let mut store = SafetensorsStore::from_bytes(None);
    let err = |e: String| Error::Weights {
        path: "<federated model>".into(),
        reason: e,
    };
    net.save_into(&mut store).map_err(|e| err(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| err(e.to_string()))?;
    Weights::from_safetensors(&bytes).map_err(|e| err(e.to_string()))
}

/// `cfg`'s network with `w` loaded; every tensor must be present with its shape.
pub(crate) fn net_from_weights(
    cfg: &EncoderConfig,
    w: &Weights,
    device: &burn::tensor::Device,
) -> Result<EncoderNet> {
    let mut net = EncoderNet::new(cfg, 0, device);
    let mut store = SafetensorsStore::from_bytes(Some(w.to_safetensors())).validate(false);
    let applied = net.load_from(&mut store).map_err(|e| Error::Weights {
        path: "<federated model>".into(),
        reason: e.to_string(),
    })?;
    check_apply(&applied)?;
    Ok(net)
}

/// An encoder of architecture `cfg` and input contract `input` with weights `w` (a model
/// downloaded from the coordinator).
pub fn encoder_from_weights(cfg: &EncoderConfig, input: InputSpec, w: &Weights) -> Result<Encoder> {
    cfg.validate()?;
    Encoder::from_net(cfg.clone(), net_from_weights(cfg, w, &compute_device())?).with_input(input)
}

/// One federated client: one person's prepared samples (the encoder's input size), which never
/// leave it.
#[derive(Debug, Clone)]
pub struct FedClient {
    id: String,
    images: Vec<GrayImage>,
}

impl FedClient {
    /// A client named `id` holding `images` (at least 2, to have a positive pair).
    pub fn new(id: impl Into<String>, images: Vec<GrayImage>) -> Result<FedClient> {
        if images.len() < 2 {
            return Err(Error::invalid(
                "client samples",
                format!(
                    "{} sample(s): a client needs at least 2 of its person",
                    images.len()
                ),
            ));
        }
        Ok(FedClient {
            id: id.into(),
            images,
        })
    }

    /// The client's name (its id towards the coordinator).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Samples held.
    pub fn samples(&self) -> usize {
        self.images.len()
    }

    /// The training hashmap under `enc`: the normalised mean of the client's embeddings.
    pub fn hashmap(&self, enc: &Encoder) -> Result<Vec<f32>> {
        Ok(mean_direction(&enc.embed(&self.images)?))
    }

    /// Trains locally from the round's `global` weights against the task's negatives and
    /// returns the update (new weights minus `global`) and the new training hashmap. The
    /// randomness (augmentation) comes from `seed`, the round and the client's id.
    pub fn train(
        &self,
        cfg: &EncoderConfig,
        global: &Weights,
        task: &Task,
        local: &LocalConfig,
        seed: u64,
    ) -> Result<ClientUpdate> {
        local.validate()?;
        let s = cfg.input_size;
        for img in &self.images {
            check_size(img, s)?;
        }
        let d = cfg.embedding_dim;
        if let Some(bad) = task.negatives.iter().find(|n| n.len() != d) {
            return Err(Error::invalid(
                "negatives",
                format!(
                    "a relayed hashmap has {} values, the encoder gives {d}",
                    bad.len()
                ),
            ));
        }
        let device = compute_device().autodiff();
        let mut net = net_from_weights(cfg, global, &device)?.with_frozen_norms();
        let mut optim = SgdConfig::new().init();
        let tag = fnv1a(self.id.as_bytes());
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ task.round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag);
        let aug = AugmentConfig::default();
        let k = self.images.len();
        let m = task.negatives.len();
        let negatives = (m > 0)
            .then(|| Tensor::<2>::from_data(TensorData::new(task.negatives.concat(), [m, d]), &device));
        if let Some(own) = &task.own {
            if own.len() != d {
                return Err(Error::invalid(
                    "own hashmap",
                    format!("{} values, the encoder gives {d}", own.len()),
                ));
            }
        }
        let own = task
            .own
            .as_ref()
            .map(|o| Tensor::<2>::from_data(TensorData::new(o.clone(), [1, d]), &device));
        for step in 0..local.steps {
            let pixels: Vec<f32> = self
                .images
                .iter()
                .flat_map(|img| {
                    if local.augment {
                        nhm_data::preprocess::to_f32(&augment(img, &aug, &mut rng))
                    } else {
                        nhm_data::preprocess::to_f32(img)
                    }
                })
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [k, 1, s, s]), &device);
            let emb = net.forward(x);
            let loss = local_loss(emb, negatives.clone(), own.clone(), &local.loss);
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Err(Error::Diverged {
                    epoch: task.round as usize,
                    step,
                    loss: value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(local.learning_rate, net, grads);
        }
        let trained = net.valid();
        let new = net_weights(&trained)?;
        let delta = new.minus(global);
        let enc = Encoder::from_net(cfg.clone(), trained);
        Ok(ClientUpdate {
            round: task.round,
            delta,
            samples: k as u32,
            hashmap: self.hashmap(&enc)?,
        })
    }
}

/// FNV-1a of a client id: a stable per-client seed tag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The local loss on `[k, d]` own embeddings and `[m, d]` constant negatives.
fn local_loss(
    emb: Tensor<2>,
    negatives: Option<Tensor<2>>,
    own: Option<Tensor<2>>,
    loss: &FedLoss,
) -> Tensor<1> {
    let [k, _] = emb.dims();
    match *loss {
        FedLoss::Proxy { temperature } if own.is_some() => {
            let targets = match (own, negatives) {
                (Some(o), Some(n)) => Tensor::cat(vec![o, n], 0),
                (Some(o), None) => o,
                (None, _) => unreachable!("guarded by the match arm"),
            };
            let logits = emb.matmul(targets.transpose()).div_scalar(temperature);
            let logp = burn::tensor::activation::log_softmax(logits, 1);
            logp.narrow(1, 0, 1).mean().neg().reshape([1])
        }
        FedLoss::Contrastive { margin } => {
            let labels = vec![0u32; k];
            let pos = crate::loss::contrastive(emb.clone(), &labels, margin);
            match negatives {
                None => pos,
                Some(n) => {
                    let d2 = emb
                        .matmul(n.transpose())
                        .mul_scalar(-2.0)
                        .add_scalar(2.0)
                        .clamp_min(1e-9);
                    let hinge = d2.sqrt().neg().add_scalar(margin).clamp_min(0.0).powf_scalar(2.0);
                    pos + hinge.mean().reshape([1])
                }
            }
        }
        FedLoss::Softmax { temperature } | FedLoss::Proxy { temperature } => {
            let (all, labels) = match negatives {
                None => (emb, vec![0u32; k]),
                Some(n) => {
                    let [m, _] = n.dims();
                    let labels = (0..k as u32).map(|_| 0).chain(1..=m as u32).collect();
                    (Tensor::cat(vec![emb, n], 0), labels)
                }
            };
            crate::loss::supcon(all, &labels, temperature)
        }
    }
}

/// The normalised mean of unit vectors (a zero mean stays zero): a training hashmap from
/// embeddings.
pub fn mean_direction(v: &[Vec<f32>]) -> Vec<f32> {
    let d = v.first().map_or(0, Vec::len);
    let mut m = vec![0f32; d];
    for e in v {
        for (a, b) in m.iter_mut().zip(e) {
            *a += b;
        }
    }
    let norm = m.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    m.iter_mut().for_each(|x| *x /= norm);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::blobs;

    fn setup() -> (Encoder, Vec<FedClient>, nhm_data::Dataset) {
        let cfg = EncoderConfig::tiny_for_tests();
        let s = cfg.input_size as u32;
        let enc = Encoder::new(&cfg, 3).unwrap();
        let ds = blobs(8, 3, s, 5);
        let clients = (0..6)
            .map(|k| {
                FedClient::new(
                    format!("c{k}"),
                    ds.samples_of(k).map(|x| x.image.clone()).collect(),
                )
                .unwrap()
            })
            .collect();
        let val = ds.select_subjects(&[6, 7]);
        (enc, clients, val)
    }

    #[test]
    fn local_training_returns_a_seeded_update_of_the_model_layout() {
        let (enc, clients, _) = setup();
        let global = encoder_weights(&enc).unwrap();
        let negatives: Vec<Vec<f32>> = clients[1..3].iter().map(|c| c.hashmap(&enc).unwrap()).collect();
        let task = Task {
            round: 1,
            negatives,
            own: Some(clients[0].hashmap(&enc).unwrap()),
        };
        for loss in [
            FedLoss::Softmax { temperature: 0.1 },
            FedLoss::Proxy { temperature: 0.1 },
            FedLoss::Contrastive { margin: 1.0 },
        ] {
            let local = LocalConfig {
                loss,
                ..LocalConfig::default()
            };
            let u = clients[0].train(enc.config(), &global, &task, &local, 9).unwrap();
            assert!(global.same_layout(&u.delta));
            assert!(
                u.delta.norm() > 0.0 && u.delta.first_non_finite().is_none(),
                "{loss:?}"
            );
            assert_eq!(u.samples, 3);
            let again = clients[0].train(enc.config(), &global, &task, &local, 9).unwrap();
            assert_eq!(again.delta, u.delta, "same seed, same update");
            // Running statistics stay those of the global model: only trained weights move.
            let moved: Vec<f32> = u.delta.values().collect();
            assert!(moved.iter().any(|v| *v != 0.0));
        }
        // The weights round-trip into an encoder that embeds like the original.
        let back = encoder_from_weights(enc.config(), enc.input().clone(), &global).unwrap();
        assert_eq!(
            clients[0].hashmap(&back).unwrap(),
            clients[0].hashmap(&enc).unwrap()
        );
    }

    #[test]
    fn bad_client_input_is_refused() {
        let (enc, clients, _) = setup();
        let global = encoder_weights(&enc).unwrap();
        assert!(FedClient::new("one", vec![GrayImage::new(16, 16)]).is_err());
        let wrong = Task {
            round: 1,
            negatives: vec![vec![1.0; 3]],
            own: None,
        };
        let err = clients[0]
            .train(enc.config(), &global, &wrong, &LocalConfig::default(), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("relayed hashmap"), "{err}");
        let bad_lr = LocalConfig {
            learning_rate: -1.0,
            ..LocalConfig::default()
        };
        let ok_task = Task {
            round: 1,
            negatives: vec![],
            own: None,
        };
        assert!(clients[0]
            .train(enc.config(), &global, &ok_task, &bad_lr, 1)
            .is_err());
        let other = Weights::from_parts(vec![("x".into(), vec![1], vec![0.0])]).unwrap();
        assert!(clients[0]
            .train(enc.config(), &other, &ok_task, &LocalConfig::default(), 1)
            .is_err());
    }

    #[test]
    fn simulation_runs_rounds_through_the_coordinator_reproducibly() {
        let (enc, clients, val) = setup();
        let cfg = SimConfig {
            fed: nhm_fed::FedConfig {
                clients_per_round: 3,
                negatives: 2,
                seed: 4,
                ..nhm_fed::FedConfig::default()
            },
            local: LocalConfig::default(),
            rounds: 2,
            eval_every: 1,
            delta: 1e-3,
            max_val_impostor_pairs: 1000,
        };
        let mut seen = 0;
        let a = simulate(&enc, &clients, &val, &cfg, &mut |_| seen += 1).unwrap();
        assert_eq!(seen, 2);
        assert_eq!(a.rounds.len(), 2);
        assert!(a
            .rounds
            .iter()
            .all(|r| r.summary.accepted == 3 && r.val_eer.is_some()));
        assert_eq!(a.counts.accepted, 6);
        let b = simulate(&enc, &clients, &val, &cfg, &mut |_| {}).unwrap();
        assert_eq!(
            encoder_weights(&a.encoder).unwrap(),
            encoder_weights(&b.encoder).unwrap(),
            "same seed, same model"
        );
    }
}
